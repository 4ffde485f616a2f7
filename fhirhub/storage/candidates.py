"""Which search keys a search reaches its candidates by: a few equality conditions on the
key fields (fhir/search/keys.py), ORed as branches. The exact filter (query_translation)
still decides every match; keys only have to include them all.

Each clause offers alternatives (one per value, or the buckets of a date range); a clause
the keys cannot express (`:contains`, `:missing`, `:not`, numbers) offers none and is only
filtered. Clauses on different key fields combine in one query (code AND a date bucket);
of several on one field the most selective-looking is used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fhirhub.fhir.dates import parse_period
from fhirhub.fhir.search import keys as k
from fhirhub.fhir.search.query import Clause, split_prefix
from fhirhub.fhir.search.values import normalize, reference_keys
from fhirhub.storage.date_candidates import (
    MAX_BRANCHES,
    bucket_keys,
    date_bounds,
)
from fhirhub.storage.documents import INDEX_PREFIX, resource_key
from fhirhub.storage.query_translation import composite_key
from fhirhub.storage.search_stats import Extent

Conditions = dict[str, Any]
# Tokens most resources share a few values of: used only when nothing better is offered.
COMMON_TOKENS = {
    "status",
    "gender",
    "active",
    "category",
    "intent",
    "clinical-status",
    "verification-status",
    "priority",
    "class",
    "deceased",
    "language",
}
FIELD_ORDER = ("_id", k.REFERENCE_KEYS, k.TOKEN_KEYS, k.STRING_KEYS, k.DATE_KEYS)


@dataclass(frozen=True)
class Offer:
    """A clause's alternatives (each a condition; any of them may hold a match)."""

    field: str
    alternatives: tuple[str, ...]
    common: bool = False  # a low-selectivity token


@dataclass(frozen=True)
class Candidates:
    """Branches: conditions ORed; None = no key narrows the search (the whole type)."""

    branches: list[Conditions] | None
    bounded: int | None = None  # at most this many candidates (an _id list)

    @property
    def nothing(self) -> bool:
        return self.branches == []


Extents = Callable[[str], Extent | None]


class KeyPlanner:
    def __init__(self, base: str, string_code: Callable[[str, str], str], extents: Extents):
        self.base = base
        self.string_code = string_code
        self.extents = extents

    def offer(self, resource_type: str, clause: Clause) -> Offer | None:
        if clause.modifier == "missing" or clause.chain is not None or clause.has is not None:
            return None
        values = clause.values
        if clause.name == "_id":
            return Offer("_id", tuple(resource_key(resource_type, v) for v in values))
        if clause.name == "_lastUpdated":
            return self._dates(
                k.LAST_UPDATED, values, point=True, extent=self._extent(k.LAST_UPDATED)
            )
        kind = clause.type
        if kind == "token":
            return self._token(clause)
        if kind == "string" and clause.modifier != "contains":
            code = self.string_code(resource_type, clause.name)
            prefixes = [k.string_prefix(normalize(v)) for v in values]
            if any(p is None for p in prefixes):
                return None
            return Offer(k.STRING_KEYS, tuple(f"{code}={p}" for p in prefixes))
        if kind == "reference" and clause.modifier != "identifier":
            keys = []
            for value in values:
                ref = value.rsplit("/", 1)[-1] if clause.modifier else value
                keys.append(
                    k.token_key(clause.name, k.reference_tail(reference_keys(ref, self.base)[0]))
                )
            return Offer(k.REFERENCE_KEYS, tuple(keys))
        if kind == "uri" and clause.modifier in (None, "above"):
            if clause.modifier == "above":
                found = []
                for value in values:
                    parts = value.split("/")
                    found += ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
                values = tuple(found)
            return Offer(k.TOKEN_KEYS, tuple(k.token_key(clause.name, v) for v in values))
        if kind == "composite" and clause.modifier is None:
            return Offer(
                k.TOKEN_KEYS, tuple(k.token_key(clause.name, composite_key(v)) for v in values)
            )
        if kind == "date":
            return self._dates(clause.name, values, point=False, extent=self._extent(clause.name))
        return None

    def _extent(self, code: str) -> Extent | None:
        return self.extents(code)

    def _token(self, clause: Clause) -> Offer | None:
        if clause.modifier not in (None, "of-type"):
            return None
        keys = []
        for value in clause.values:
            if clause.modifier == "of-type":
                code = value.split("|")[-1]
            elif "|" in value:
                code = value.split("|", 1)[1]
            else:
                code = value
            if not code:  # 'system|': every code of a system
                return None
            keys.append(k.token_key(clause.name, code))
        return Offer(k.TOKEN_KEYS, tuple(keys), common=clause.name in COMMON_TOKENS)

    def _dates(
        self, code: str, values: tuple[str, ...], point: bool, extent: Extent | None
    ) -> Offer | None:
        keys: list[str] = []
        for raw in values:
            prefix, value = split_prefix(raw)
            qlo, qhi = parse_period(value)
            found = bucket_keys(code, date_bounds(prefix, qlo, qhi, point), extent, point)
            if found is None:
                return None
            keys += found
        return Offer(k.DATE_KEYS, tuple(dict.fromkeys(keys)))

    def plan(
        self, resource_type: str, clauses: tuple[Clause, ...], extra: list[Offer]
    ) -> Candidates:
        offers = [o for o in (self.offer(resource_type, c) for c in clauses) if o is not None]
        offers += extra
        if any(not o.alternatives for o in offers):
            return Candidates([])
        ids = [o for o in offers if o.field == "_id"]
        if ids:
            best = min(ids, key=lambda o: len(o.alternatives))
            return Candidates([{"_id": v} for v in best.alternatives], len(best.alternatives))
        chosen: dict[str, Offer] = {}
        for offer in sorted(offers, key=_rank):
            if offer.field in chosen:
                continue
            size = len(offer.alternatives)
            for other in chosen.values():
                size *= len(other.alternatives)
            if size <= MAX_BRANCHES:
                chosen[offer.field] = offer
        if not chosen:
            return Candidates(None)
        branches: list[Conditions] = [{}]
        for offer in chosen.values():
            branches = [{**b, offer.field: v} for b in branches for v in offer.alternatives]
        return Candidates(branches)


def _rank(offer: Offer) -> tuple[int, int, int]:
    return (int(offer.common), FIELD_ORDER.index(offer.field), len(offer.alternatives))


def compartment_offer(query_filter: Conditions) -> Offer | None:
    """The compartment restriction of an access-policy or compartment filter as an offer:
    {'s_comp': x}, {'s_comp': {'$in': [...]}} or an $or of such."""
    field = INDEX_PREFIX + k.COMPARTMENT_CODE
    values: list[str] = []
    if "$or" in query_filter and len(query_filter) == 1:
        for part in query_filter["$or"]:
            found = compartment_offer(part)
            if found is None:
                return None
            values += found.alternatives
        return Offer(k.REFERENCE_KEYS, tuple(values))
    value = query_filter.get(field)
    if isinstance(value, str):
        values = [value]
    elif isinstance(value, dict) and set(value) == {"$in"}:
        values = [v for v in value["$in"] if isinstance(v, str)]
    else:
        return None
    return Offer(k.REFERENCE_KEYS, tuple(f"{k.COMPARTMENT_CODE}={v}" for v in values))
