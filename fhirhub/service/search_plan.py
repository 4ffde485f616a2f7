"""Turning a parsed search into a source of ordered pages (search_sources.py): the exact
filter, the candidate keys, which chain or _has drives the order, and the sort."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from fhirhub.fhir.errors import BadRequest, TooCostly
from fhirhub.fhir.search.extract import Extractor
from fhirhub.fhir.search.keys import DATE_KEYS, LAST_UPDATED, MISSING_BUCKET, number_day
from fhirhub.fhir.search.query import Clause, SearchQuery
from fhirhub.fhir.search.registry import SearchRegistry
from fhirhub.service import access
from fhirhub.service.search_sources import (
    UNBOUNDED,
    ChainSource,
    HasSource,
    Key,
    Page,
    PlainSource,
    Source,
)
from fhirhub.storage.candidates import Candidates, KeyPlanner, Offer, compartment_offer
from fhirhub.storage.documents import INDEX_PREFIX
from fhirhub.storage.query_translation import NOTHING, merge_filters, to_filter
from fhirhub.storage.search_store import Document, SearchStore
from fhirhub.storage.trees import DateTree

# Chains and _has that do not drive the order resolve to at most this many ids; beyond it
# the search is too costly (never a silently shortened answer).
MAX_INTERMEDIATE = 1000
MISSING = "~"  # the sort key of resources without the sorted parameter (after the others)


@dataclass
class SearchPlan:
    source: Source
    exact: Document
    resource_type: str
    unfiltered: bool  # no criteria and no access limit: the type's count is the total
    bounded: int | None = None

    @property
    def backward(self) -> bool:
        """Can pages be read backwards (previous links)? Not for chains and _has."""
        return isinstance(self.source, PlainSource | PhasedSource)


class Planner:
    def __init__(
        self,
        store: SearchStore,
        registry: SearchRegistry,
        extractor: Extractor,
        base: str,
    ):
        self.store = store
        self.registry = registry
        self.extractor = extractor
        self.base = base

    # -- filters --------------------------------------------------------------------------

    def exact(self, query: SearchQuery, *, restricted: bool = True) -> Document:
        """The database filter a match satisfies, with chains and _has resolved to ids
        (bounded): for in-memory matching and scope criteria."""
        resolved = tuple(self._resolve(query.resource_type, c) for c in query.clauses)
        if any(c is None for c in resolved):
            return dict(NOTHING)
        query_filter = to_filter(query.with_clauses(tuple(c for c in resolved if c)), self.base)
        limit = self._policy(query.resource_type) if restricted else None
        return query_filter if limit is None else merge_filters([query_filter, limit])

    def _policy(self, resource_type: str) -> Document | None:
        policy = access.active()
        return policy.search_filter(resource_type, "s") if policy else None

    def _resolve(self, resource_type: str, clause: Clause) -> Clause | None:
        """A chained or _has clause as a plain reference / _id clause (None: no match)."""
        if clause.chain is not None:
            inner = self.plan(clause.chain).source
            ids = [d["_id"] for d in _bounded(inner, clause.name)]
            return replace(clause, chain=None, values=tuple(ids)) if ids else None
        if clause.has is not None:
            has = clause.has
            inner = self.plan(has.query).source
            prefix = f"{resource_type}/"
            ids = sorted(
                {
                    r[len(prefix) :]
                    for d in _bounded(inner, "_has")
                    for r in d.get(INDEX_PREFIX + has.param, [])
                    if isinstance(r, str) and r.startswith(prefix)
                }
            )
            if len(ids) > MAX_INTERMEDIATE:
                raise _too_many("_has")
            return Clause("_id", "token", None, tuple(ids)) if ids else None
        return clause

    # -- plans ----------------------------------------------------------------------------

    def plan(
        self,
        query: SearchQuery,
        compartment: str | None = None,
        *,
        sort: tuple[tuple[str, bool], ...] = (),
    ) -> SearchPlan:
        resource_type = query.resource_type
        drivers = [c for c in query.clauses if c.chain is not None or c.has is not None]
        driver = drivers[0] if drivers else None
        rest = tuple(c for c in query.clauses if c is not driver)
        resolved = tuple(self._resolve(resource_type, c) for c in rest)
        if any(c is None for c in resolved):
            return SearchPlan(
                _nothing(self.store, resource_type), dict(NOTHING), resource_type, False
            )
        clauses = tuple(c for c in resolved if c is not None)
        exact = to_filter(query.with_clauses(clauses), self.base)
        extra: list[Offer] = []
        limit = self._policy(resource_type)
        for restriction in (limit, _compartment_filter(compartment)):
            if restriction is None:
                continue
            exact = merge_filters([exact, restriction])
            offer = compartment_offer(restriction)
            if offer is not None:
                extra.append(offer)
        planner = KeyPlanner(
            self.base, self.extractor.string_key_code, self._extents(resource_type)
        )
        candidates = planner.plan(resource_type, clauses, extra)
        prior = self._prior(resource_type, candidates)
        unfiltered = not query.clauses and limit is None and compartment is None
        if driver is not None:
            source = self._driven(driver, resource_type, candidates, exact, prior)
        else:
            source = self._sorted(resource_type, candidates, exact, prior, sort)
        return SearchPlan(source, exact, resource_type, unfiltered, candidates.bounded)

    def _extents(self, resource_type: str) -> Any:
        cache: dict[str, Any] = {}

        def extent(code: str) -> Any:
            if "all" not in cache:
                cache["all"] = self.store.extents(resource_type)
            return cache["all"].get(code)

        return extent

    def _prior(self, resource_type: str, candidates: Candidates) -> float:
        if candidates.bounded is not None:
            return float(candidates.bounded)
        if self.store.counts.maintained:
            return float(self.store.counts.estimate(resource_type))
        return UNBOUNDED

    def _driven(
        self,
        driver: Clause,
        resource_type: str,
        candidates: Candidates,
        exact: Document,
        prior: float,
    ) -> Source:
        if driver.chain is not None:
            inner = self.plan(driver.chain).source
            outer = PlainSource(self.store, resource_type, candidates.branches, exact, prior)
            return ChainSource(self.store, inner, outer, driver.name)
        assert driver.has is not None
        inner = self.plan(driver.has.query).source
        if candidates.branches == []:
            return _nothing(self.store, resource_type)
        return HasSource(self.store, inner, driver.has.param, resource_type, exact)

    def _sorted(
        self,
        resource_type: str,
        candidates: Candidates,
        exact: Document,
        prior: float,
        sort: tuple[tuple[str, bool], ...],
    ) -> Source:
        plain = PlainSource(self.store, resource_type, candidates.branches, exact, prior)
        if not sort or sort[0][0] == "_id":
            return plain
        code = sort[0][0]
        params = self.registry.params(resource_type)
        is_date = code == "_lastUpdated" or (code in params and params[code].type == "date")
        if len(sort) > 1 or not is_date:
            raise _Unsupported
        key_code = LAST_UPDATED if code == "_lastUpdated" else code
        field = "ts" if code == "_lastUpdated" else f"{INDEX_PREFIX}{code}__lo"
        extent = self.store.extents(resource_type).get(key_code)
        phases: list[PlainSource] = []
        if extent is not None and extent.lo is not None:
            tree = DateTree(
                resource_type,
                key_code,
                number_day(extent.lo[0]),
                number_day(extent.lo[1]),
                extent.open_lo,
                field=field,
                decades=code != "_lastUpdated",
            )
            # A bucket read whole may hold resources without the date: they come last.
            dated = merge_filters([exact, {field: {"$exists": True}}])
            phases.append(
                replace(
                    plain, exact=dated, tree=tree, key_of=lambda d: [_iso(d.get(field)), d["_id"]]
                )
            )
        if code != "_lastUpdated":
            lacking = merge_filters([exact, {field: {"$exists": False}}])
            missing = {DATE_KEYS: f"{code}<{MISSING_BUCKET}"}
            branches = None
            if candidates.branches is not None:
                branches = [{**missing, **b} for b in candidates.branches if DATE_KEYS not in b]
                branches += [b for b in candidates.branches if DATE_KEYS in b]
            else:
                branches = [missing]
            phases.append(
                replace(
                    plain, branches=branches, exact=lacking, key_of=lambda d: [MISSING, d["_id"]]
                )
            )
        return PhasedSource(phases, descending=sort[0][1], dated=extent is not None)


class _Unsupported(Exception):
    """This sort is done in memory (search.py)."""


@dataclass
class PhasedSource:
    """Sources whose orders follow one another (a date order, then the resources without
    the date); `descending` walks the first ones newest first."""

    phases: list[PlainSource]
    descending: bool
    dated: bool  # the first phase is the date order (else only the undated remain)

    def page(self, need: int, anchor: Key | None, reverse: bool = False) -> Page:
        order = list(range(len(self.phases)))
        if anchor is not None:
            start = len(self.phases) - 1 if anchor[0] == MISSING else 0
        else:
            start = order[-1] if reverse else 0
        out = Page([], [], False)
        for index in order[start::-1] if reverse else order[start:]:
            by_date = index == 0 and self.dated
            walk_reverse = (self.descending != reverse) if by_date else reverse
            here = anchor if index == start else None
            found = self.phases[index].page(need - len(out.docs), here, walk_reverse)
            out.docs += found.docs
            out.keys += found.keys
            if len(out.docs) >= need:
                return out
        out.complete = True
        return out

    def restricted(self, condition: dict[str, Any]) -> PhasedSource:
        return replace(self, phases=[p.restricted(condition) for p in self.phases])


def _iso(value: Any) -> Any:
    return value.isoformat() if value is not None else None


def _compartment_filter(compartment: str | None) -> Document | None:
    return {INDEX_PREFIX + "comp": compartment} if compartment else None


def _nothing(store: SearchStore, resource_type: str) -> PlainSource:
    return PlainSource(store, resource_type, [], dict(NOTHING))


def _bounded(source: Source, name: str) -> list[Document]:
    page = source.page(MAX_INTERMEDIATE + 1, None)
    if len(page.docs) > MAX_INTERMEDIATE:
        raise _too_many(name)
    return page.docs


def _too_many(name: str) -> TooCostly:
    return TooCostly(
        f"{name} matches more than {MAX_INTERMEDIATE} intermediate resources; narrow the "
        "search (or make it the first chained or _has parameter)"
    )


__all__ = ["MISSING", "BadRequest", "Planner", "SearchPlan", "_Unsupported"]
