"""Search: resolve chains and _has, run the query, page, include, build the Bundle."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

from fhirhub.fhir.definitions import Definitions
from fhirhub.fhir.errors import BadRequest, PayloadTooLarge
from fhirhub.fhir.search.extract import COMPARTMENT_FIELD, Extractor
from fhirhub.fhir.search.query import Clause, QueryParser, SearchQuery
from fhirhub.fhir.search.registry import SearchRegistry
from fhirhub.fhir.summary import Projector
from fhirhub.service import access
from fhirhub.storage import filter_eval
from fhirhub.storage.documents import INDEX_PREFIX, StoredVersion
from fhirhub.storage.query_translation import NOTHING, merge_filters, sort_spec, to_filter
from fhirhub.storage.search_store import Document, SearchStore, current_document
from fhirhub.storage.store import utc_now_ms

# Chains and _has resolve to at most this many ids; beyond it the search is too costly.
MAX_INTERMEDIATE = 1000
MAX_INCLUDES = 1000
# Where the database cannot sort a large result cheaply (FerretDB), up to this many matches
# are put in _id order here; beyond it a search without _sort pages in stored order.
KEY_ORDER_IN_MEMORY = 1000
# Up to this many, the matches are read whole at once (a read per key costs ~1 ms each).
WHOLE_READ = 100
INCLUDE_ITERATIONS = 3


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
        docs = self.store.find(self._filter(query), [], 0, limit)
        return [StoredVersion.from_doc(d) for d in docs]

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
        return filter_eval.matches(document, self._filter(query))

    def compartment_owners(self, resource: dict[str, Any], compartment: str) -> list[str]:
        index = self.extractor.extract(resource)
        return [c for c in index.get(COMPARTMENT_FIELD, []) if c.startswith(f"{compartment}/")]

    def search_for_bundle(
        self, resource_type: str, pairs: list[tuple[str, str]], self_path: str
    ) -> dict[str, Any]:
        if resource_type not in self.definitions.resource_types:
            raise BadRequest(f"unknown resource type {resource_type!r}")
        return self.search(resource_type, pairs, self_path=self_path)

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
        query = self.parser.parse(resource_type or "Resource", pairs, strict)
        query_filter = self._filter(query)
        if resource_type is None:
            query_filter.pop("t", None)
        if compartment:
            query_filter = merge_filters(
                [query_filter, {INDEX_PREFIX + COMPARTMENT_FIELD: compartment}]
            )
        if query.summary == "count":
            return self._bundle([], self.store.count(query_filter), [], query, self_path, pairs)
        sort = sort_spec(query, self._date_codes(query.resource_type))
        docs, links = self._page(query, query_filter, sort, self_path, pairs)
        total = None
        first_page = not query.cursor and not query.offset
        if first_page and len(docs) < query.count:
            total = len(docs)
        elif query.total == "accurate":
            total = self.store.count(query_filter)
        included = self._includes(query, docs)
        return self._bundle(docs, total, included, query, self_path, pairs, links)

    def _date_codes(self, resource_type: str) -> set[str]:
        return {c for c, p in self.registry.params(resource_type).items() if p.type == "date"}

    def _page(
        self,
        query: SearchQuery,
        query_filter: Document,
        sort: list[tuple[str, int]],
        self_path: str,
        pairs: list[tuple[str, str]],
    ) -> tuple[list[Document], list[dict[str, str]]]:
        keyset = not query.sort  # default order is _id: page by key so inserts never shift
        kept = [(k, v) for k, v in pairs if k not in ("_cursor", "_offset")]

        def link(relation: str, extra: dict[str, str]) -> dict[str, str]:
            params = [*kept, *extra.items()]
            return {"relation": relation, "url": f"{self.base}/{self_path}?{urlencode(params)}"}

        links = [link("first", {})]
        if keyset and (query.cursor or not query.offset):
            direction, _, anchor = (query.cursor or "").partition(":")
            page_filter = query_filter
            order = 1
            if anchor:
                if direction not in ("after", "before"):
                    raise BadRequest("malformed _cursor")
                op = "$gt" if direction == "after" else "$lt"
                order = 1 if direction == "after" else -1
                page_filter = {"$and": [query_filter, {"_id": {op: anchor}}]}
            docs = self._in_key_order(page_filter, order, query.count + 1, bool(anchor))
            if docs is None:  # too many matches to order by key here: stored order
                return self._stored_order_page(query, query_filter, links, link)
            more = len(docs) > query.count
            docs = docs[: query.count]
            if order == -1:
                docs.reverse()
            has_next = more if order == 1 else bool(anchor)
            has_previous = bool(anchor) and (order == 1 or more)
            self_extra = {"_cursor": query.cursor} if query.cursor else {}
            links.insert(0, link("self", self_extra))
            if docs and has_next:
                links.append(link("next", {"_cursor": f"after:{docs[-1]['_id']}"}))
            if docs and has_previous:
                links.append(link("previous", {"_cursor": f"before:{docs[0]['_id']}"}))
            return docs, links
        if keyset:  # an _offset without _sort: a page of the stored order
            return self._stored_order_page(query, query_filter, links, link)
        docs = self.store.find(query_filter, sort, query.offset, query.count + 1)
        return self._offset_page(query, docs, links, link)

    def _in_key_order(
        self, page_filter: Document, order: int, limit: int, anchored: bool
    ) -> list[Document] | None:
        """The first `limit` matches in _id order; None when the database cannot sort them
        without reading every match and there are more than KEY_ORDER_IN_MEMORY."""
        if self.store.sorts_large_results:
            return self.store.find(page_filter, [("_id", order)], 0, limit)
        found = self.store.find(page_filter, [], 0, WHOLE_READ + 1)
        if len(found) <= WHOLE_READ:  # few matches: one read of all of them
            found.sort(key=lambda d: str(d["_id"]), reverse=order == -1)
            return found[:limit]
        # More: keys only, and the page's documents read by key, so the other matches are
        # neither sent nor decoded (957 Observations, first 10: 388 -> 281 ms).
        keys = self.store.ids(page_filter, KEY_ORDER_IN_MEMORY + 1)
        if len(keys) > KEY_ORDER_IN_MEMORY:
            if not anchored:
                return None
            # A _cursor from when the result was small: keep its order, at full cost.
            return self.store.find(page_filter, [("_id", order)], 0, limit)
        keys.sort(reverse=order == -1)
        return self.store.by_keys(keys[:limit])

    def _stored_order_page(
        self,
        query: SearchQuery,
        query_filter: Document,
        links: list[dict[str, str]],
        link: Callable[[str, dict[str, str]], dict[str, str]],
    ) -> tuple[list[Document], list[dict[str, str]]]:
        """Offset paging in the order the database returns matches (no sort: on FerretDB
        the cost is the offset plus the page, not every match)."""
        docs = self.store.find(query_filter, [], query.offset, query.count + 1)
        return self._offset_page(query, docs, links, link)

    @staticmethod
    def _offset_page(
        query: SearchQuery,
        docs: list[Document],
        links: list[dict[str, str]],
        link: Callable[[str, dict[str, str]], dict[str, str]],
    ) -> tuple[list[Document], list[dict[str, str]]]:
        more = len(docs) > query.count
        docs = docs[: query.count]
        links.insert(0, link("self", {"_offset": str(query.offset)} if query.offset else {}))
        if more:
            links.append(link("next", {"_offset": str(query.offset + query.count)}))
        if query.offset:
            links.append(link("previous", {"_offset": str(max(0, query.offset - query.count))}))
        return docs, links

    # -- resolving chains and _has ------------------------------------------------------------

    def _filter(self, query: SearchQuery, *, restricted: bool = True) -> Document:
        resolved = tuple(self._resolve(query.resource_type, c) for c in query.clauses)
        if any(c is None for c in resolved):
            return dict(NOTHING)
        query_filter = to_filter(query.with_clauses(tuple(c for c in resolved if c)), self.base)
        # Access control (SMART scopes): every search, chain and _has target is limited to
        # what the request's token may search, so out-of-scope data never shapes a result.
        policy = access.active()
        limit = policy.search_filter(query.resource_type, "s") if restricted and policy else None
        return query_filter if limit is None else merge_filters([query_filter, limit])

    def criteria_filter(self, resource_type: str, query_string: str) -> Document:
        """Database filter for criteria, without access limits (SMART v2 scope queries)."""
        query = self.parser.parse_string(resource_type, query_string, strict=True)
        return self._filter(query, restricted=False)

    def _resolve(self, resource_type: str, clause: Clause) -> Clause | None:
        """Chained and _has clauses become plain reference / _id clauses (None: no match)."""
        if clause.chain is not None:
            ids = self.store.ids(self._filter(clause.chain), MAX_INTERMEDIATE + 1)
            self._bounded(ids, clause.name)
            return replace(clause, chain=None, values=tuple(ids)) if ids else None
        if clause.has is not None:
            has = clause.has
            field = INDEX_PREFIX + has.param
            refs = self.store.field_values(self._filter(has.query), field, MAX_INTERMEDIATE + 1)
            prefix = f"{resource_type}/"
            ids = sorted(
                {r[len(prefix) :] for r in refs if isinstance(r, str) and r.startswith(prefix)}
            )
            self._bounded(ids, "_has")
            if not ids:
                return None
            return Clause("_id", "token", None, tuple(ids))
        return clause

    @staticmethod
    def _bounded(ids: list[str], name: str) -> None:
        if len(ids) > MAX_INTERMEDIATE:
            raise PayloadTooLarge(
                f"{name} matches more than {MAX_INTERMEDIATE} intermediate resources; "
                "narrow the search"
            )

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
            query_filter = {
                "t": include.source_type,
                "del": False,
                INDEX_PREFIX + code: {"$in": refs},
            }
            results += self.store.find(query_filter, [("_id", 1)], 0, MAX_INCLUDES + 1)
        return results

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
