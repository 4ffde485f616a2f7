"""Search: resolve chains and _has, run the query, page, include, build the Bundle."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

from fhirhub.fhir.definitions import Definitions
from fhirhub.fhir.errors import BadRequest, PayloadTooLarge, TooCostly
from fhirhub.fhir.search.extract import COMPARTMENT_FIELD, Extractor
from fhirhub.fhir.search.keys import REFERENCE_KEYS, token_key
from fhirhub.fhir.search.query import QueryParser, SearchQuery
from fhirhub.fhir.search.registry import SearchRegistry
from fhirhub.fhir.summary import Projector
from fhirhub.service import access
from fhirhub.service.search_paging import Pager, sort_key
from fhirhub.service.search_plan import Planner, SearchPlan
from fhirhub.service.search_sources import Page
from fhirhub.storage import filter_eval
from fhirhub.storage.documents import INDEX_PREFIX, StoredVersion
from fhirhub.storage.query_translation import sort_spec
from fhirhub.storage.search_store import Document, SearchStore, current_document
from fhirhub.storage.store import utc_now_ms

MAX_INCLUDES = 1000
INCLUDE_ITERATIONS = 3
COUNT_SLICE = 500  # a count walks its matches this many at a time


class SearchService:
    def __init__(
        self,
        store: SearchStore,
        definitions: Definitions,
        registry: SearchRegistry,
        extractor: Extractor,
        projector: Projector,
        base: str,
        before_search: Callable[[], None] = lambda: None,
    ):
        self.before_search = before_search
        self.store = store
        self.definitions = definitions
        self.registry = registry
        self.extractor = extractor
        self.projector = projector
        self.base = base
        self.parser = QueryParser(registry, set(definitions.resource_types))
        self.planner = Planner(store, registry, extractor, base)

    # -- the SearchApi contract ---------------------------------------------------------------

    def find_resources(
        self, resource_type: str, query_string: str, limit: int = 1000
    ) -> list[dict[str, Any]]:
        return [
            v.resource
            for v in self.find_versions(resource_type, query_string, limit)
            if v.resource is not None
        ]

    def find_versions(
        self, resource_type: str, query_string: str, limit: int
    ) -> list[StoredVersion]:
        self.before_search()
        query = self.parser.parse_string(resource_type, query_string, strict=True)
        page = self.planner.plan(query).source.page(limit, None)
        return [StoredVersion.from_doc(d) for d in page.docs]

    def validate_criteria(self, criteria: str) -> SearchQuery:
        resource_type, _, query_string = criteria.partition("?")
        if resource_type not in self.definitions.resource_types:
            raise BadRequest(f"criteria {criteria[:80]!r} must start with a resource type")
        return self.parser.parse_string(resource_type, query_string, strict=True)

    def matches(self, criteria: str, resource: dict[str, Any]) -> bool:
        query = self.validate_criteria(criteria)
        if resource.get("resourceType") != query.resource_type:
            return False
        stored = StoredVersion(
            query.resource_type, str(resource.get("id", "")), 0, utc_now_ms(), False, resource
        )
        meta = resource.get("meta") or {}
        if meta.get("lastUpdated"):
            from fhirhub.fhir.dates import parse_period

            stored = replace(stored, last_updated=parse_period(meta["lastUpdated"])[0])
        document = current_document(stored, self.extractor.extract(resource))
        return filter_eval.matches(document, self.planner.exact(query))

    def compartment_owners(self, resource: dict[str, Any], compartment: str) -> list[str]:
        index = self.extractor.extract(resource)
        return [c for c in index.get(COMPARTMENT_FIELD, []) if c.startswith(f"{compartment}/")]

    def search_for_bundle(
        self, resource_type: str, pairs: list[tuple[str, str]], self_path: str
    ) -> dict[str, Any]:
        if resource_type not in self.definitions.resource_types:
            raise BadRequest(f"unknown resource type {resource_type!r}")
        return self.search(resource_type, pairs, self_path=self_path)

    def criteria_filter(self, resource_type: str, query_string: str) -> Document:
        """Database filter for criteria, without access limits (SMART v2 scope queries)."""
        query = self.parser.parse_string(resource_type, query_string, strict=True)
        return self.planner.exact(query, restricted=False)

    # -- the search interaction ---------------------------------------------------------------

    def search(
        self,
        resource_type: str | None,
        pairs: list[tuple[str, str]],
        *,
        strict: bool = False,
        compartment: str | None = None,
        self_path: str,
    ) -> dict[str, Any]:
        self.before_search()
        if resource_type is None:
            raise BadRequest("system-level search needs a resource type", code="not-supported")
        query = self.parser.parse(resource_type, pairs, strict)
        walked = self._walked_sort(query)
        plan = self.planner.plan(query, compartment, sort=query.sort if walked else ())
        if query.summary == "count":
            return self._bundle([], self._count(plan), [], query, self_path, pairs)
        pager = Pager(self.base, self_path, pairs)
        if walked:
            paged = pager.keyset(plan.source, query, backward=plan.backward)
        else:
            paged = pager.in_memory(plan.source, query, self._sort_key(query))
        total = paged.total
        if total is None and query.total == "accurate":
            total = self._count(plan)
        elif total is None and query.total == "estimate":
            total = self._estimate(plan, paged.first)
        included = self._includes(query, paged.docs)
        return self._bundle(paged.docs, total, included, query, self_path, pairs, paged.links)

    def _walked_sort(self, query: SearchQuery) -> bool:
        """Is the search paged in a walked order (no sort, _id, or one date key)?"""
        if not query.sort:
            return True
        if len(query.sort) > 1:
            return False
        code = query.sort[0][0]
        if code in ("_id", "_lastUpdated"):
            return True
        param = self.registry.get(query.resource_type, code)
        return param is not None and param.type == "date"

    def _count(self, plan: SearchPlan) -> int:
        if plan.unfiltered:
            return self.store.type_count(plan.resource_type)
        counted = 0
        anchor = None
        started = time.monotonic()
        while True:  # in slices, so the documents of a large count are not all held at once
            page = plan.source.page(COUNT_SLICE, anchor)
            counted += len(page.docs)
            if page.complete or not page.keys:
                return counted
            anchor = page.keys[-1]
            if (time.monotonic() - started) * 1000 > self.store.budget_ms:
                raise TooCostly(
                    f"counting more than {counted} matches needs more than the query budget "
                    "(FHIRHUB_QUERY_TIMEOUT_MS); narrow the search"
                )

    def _estimate(self, plan: SearchPlan, first_page: Page | None) -> int | None:
        if plan.unfiltered:
            return self.store.type_count(plan.resource_type)
        if first_page is None or not first_page.docs or first_page.measure <= 0:
            return None
        return round(len(first_page.docs) / min(first_page.measure, 1.0))

    def _sort_key(self, query: SearchQuery) -> Callable[[Document], Any]:
        date_codes = {
            c for c, p in self.registry.params(query.resource_type).items() if p.type == "date"
        }
        return sort_key(sort_spec(query, date_codes))

    # -- _include / _revinclude ---------------------------------------------------------------

    def _includes(self, query: SearchQuery, docs: list[Document]) -> list[Document]:
        if not query.includes:
            return []
        seen = {d["_id"] for d in docs}
        included: list[Document] = []
        frontier = docs
        for iteration in range(INCLUDE_ITERATIONS):
            found: list[Document] = []
            for include in query.includes:
                if iteration > 0 and not include.iterate:
                    continue
                found += (
                    self._revinclude(include, frontier)
                    if include.reverse
                    else self._include(include, frontier)
                )
            policy = access.active()
            fresh = [
                d for d in found if d["_id"] not in seen and (policy is None or policy.visible(d))
            ]
            for doc in fresh:
                seen.add(doc["_id"])
            included += fresh
            if len(included) > MAX_INCLUDES:
                raise PayloadTooLarge(f"more than {MAX_INCLUDES} included resources")
            if not fresh:
                break
            frontier = fresh
        return included

    def _reference_codes(self, resource_type: str, code: str) -> list[str]:
        params = self.registry.params(resource_type)
        if code == "*":
            return [c for c, p in params.items() if p.type == "reference"]
        return [code]

    def _include(self, include: Any, sources: list[Document]) -> list[Document]:
        keys: list[str] = []
        for doc in sources:
            if doc["t"] != include.source_type:
                continue
            for code in self._reference_codes(include.source_type, include.param):
                wanted = f"{include.target_type}/" if include.target_type else ""
                keys += [
                    ref
                    for ref in doc.get(INDEX_PREFIX + code, [])
                    if isinstance(ref, str)
                    and ref.count("/") == 1
                    and "://" not in ref
                    and ref.startswith(wanted)
                ]
        return self.store.by_keys(keys)

    def _revinclude(self, include: Any, targets: list[Document]) -> list[Document]:
        refs = [d["_id"] for d in targets]
        if not refs:
            return []
        results: list[Document] = []
        for code in self._reference_codes(include.source_type, include.param):
            exact = {"t": include.source_type, "del": False, INDEX_PREFIX + code: {"$in": refs}}
            # One reference-key lookup per target (FerretDB pushes no $in down).
            branches = [
                {"t": include.source_type, REFERENCE_KEYS: token_key(code, ref.split("/", 1)[1])}
                for ref in refs
            ]
            results += self.store.select(branches, exact, MAX_INCLUDES)
        return sorted(results, key=lambda d: str(d["_id"]))

    # -- the Bundle ---------------------------------------------------------------------------

    def _bundle(
        self,
        docs: list[Document],
        total: int | None,
        included: list[Document],
        query: SearchQuery,
        self_path: str,
        pairs: list[tuple[str, str]],
        links: list[dict[str, str]] | None = None,
    ) -> dict[str, Any]:
        bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
        if total is not None:
            bundle["total"] = total
        if links is None:
            links = [{"relation": "self", "url": f"{self.base}/{self_path}?{urlencode(pairs)}"}]
        bundle["link"] = links
        entries = [self._entry(d, "match", query) for d in docs]
        entries += [self._entry(d, "include", query) for d in included]
        if query.warnings:
            entries.append(
                {
                    "resource": {
                        "resourceType": "OperationOutcome",
                        "issue": [w.to_fhir() for w in query.warnings],
                    },
                    "search": {"mode": "outcome"},
                }
            )
        bundle["entry"] = entries
        return bundle

    def _entry(self, doc: Document, mode: str, query: SearchQuery) -> dict[str, Any]:
        resource = doc["res"]
        if query.summary or query.elements:
            resource = self.projector.project(resource, query.summary, query.elements)
        return {
            "fullUrl": f"{self.base}/{doc['_id']}",
            "resource": resource,
            "search": {"mode": mode},
        }
