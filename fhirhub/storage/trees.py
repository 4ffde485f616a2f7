"""The bucket trees a search walks (walk.py): `_id` order and date order."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from fhirhub.fhir.search.idorder import HEX, ORDER_DEPTH, bucket_key, id_digits
from fhirhub.fhir.search.keys import DATE_KEYS, ORDER_KEYS
from fhirhub.fhir.search.values import MIN_DATE

Document = dict[str, Any]


def _rid(doc: Document) -> str:
    return str(doc["_id"]).split("/", 1)[-1]


@dataclass(frozen=True)
class IdTree:
    """`_id` order: node = the hex digits of a bucket ('' is the whole type)."""

    resource_type: str
    depth: int = ORDER_DEPTH
    root: str = ""

    def children(self, node: str, reverse: bool) -> list[str]:
        digits = reversed(HEX) if reverse else HEX
        return [node + d for d in digits]

    def is_leaf(self, node: str) -> bool:
        return len(node) >= self.depth

    def condition(self, node: str) -> dict[str, Any]:
        if not node:
            return {"t": self.resource_type}
        return {ORDER_KEYS: bucket_key(self.resource_type, node)}

    def measure(self, node: str) -> float:
        return float(16 ** -len(node))

    def relation(self, node: str, anchor: Any, reverse: bool) -> int:
        prefix = id_digits(str(anchor).split("/", 1)[-1], self.depth)[: len(node)]
        if node == prefix:
            return 0
        before = node < prefix
        return -1 if before != reverse else 1

    def order_key(self, doc: Document) -> Any:
        return str(doc["_id"])


@dataclass(frozen=True)
class DateTree:
    """Order of a date parameter's start (`s_<code>__lo`, or `ts` for _lastUpdated):
    node = a bucket ('' is the whole range; decade, year, month, day), within the years its
    keys span. Documents tie-break by `_id`; ranges without a start come first (the open
    bucket); resources without the parameter are not in the tree (searches add them after
    it). `_lastUpdated` keys have no decade level: the root's children are years."""

    resource_type: str
    code: str
    first_year: int
    last_year: int
    with_open: bool
    field: str = ""  # the document field ordered by (default s_<code>__lo)
    decades: bool = True
    root: str = ""

    def children(self, node: str, reverse: bool) -> list[str]:
        if node == "" and not self.decades:
            found = [f"{y:04d}" for y in range(self.first_year, self.last_year + 1)]
        elif node == "":
            decades = range(self.first_year // 10, self.last_year // 10 + 1)
            found = [f"{d:03d}" for d in decades]
            if self.with_open:
                found.insert(0, OPEN)
        elif node == OPEN:
            found = []
        elif len(node) == 3:
            first = int(node) * 10
            years = range(max(first, self.first_year), min(first + 9, self.last_year) + 1)
            found = [f"{y:04d}" for y in years]
        elif len(node) == 4:
            found = [f"{node}-{m:02d}" for m in range(1, 13)]
        else:
            first = date(int(node[:4]), int(node[5:7]), 1)
            days = (date(first.year + (first.month == 12), first.month % 12 + 1, 1) - first).days
            found = [f"{node}-{d:02d}" for d in range(1, days + 1)]
        return list(reversed(found)) if reverse else found

    def is_leaf(self, node: str) -> bool:
        return len(node) == 10 or node == OPEN

    def condition(self, node: str) -> dict[str, Any]:
        if node == "":
            return {"t": self.resource_type}
        return {DATE_KEYS: f"{self.code}<{node}"}

    def measure(self, node: str) -> float:
        decades = self.last_year // 10 - self.first_year // 10 + 1 + int(self.with_open)
        if node == "":
            return 1.0
        if node == OPEN or len(node) == 3:
            return 1.0 / decades
        if len(node) == 4:
            if not self.decades:
                return 1.0 / (self.last_year - self.first_year + 1)
            return 1.0 / decades / 10
        year = self.measure(node[:4])
        return year / 12 if len(node) == 7 else year / 365

    def relation(self, node: str, anchor: Any, reverse: bool) -> int:
        moment, _ = anchor
        bucket = OPEN if moment is None or moment <= MIN_DATE else moment.date().isoformat()
        if node == "" or (node == OPEN and bucket == OPEN):
            return 0
        if node == OPEN or bucket == OPEN:
            before = node == OPEN
        else:
            prefix = bucket[: len(node)]
            if node == prefix:
                return 0
            before = node < prefix
        return -1 if before != reverse else 1

    def order_key(self, doc: Document) -> Any:
        moment = doc.get(self.field or f"s_{self.code}__lo")
        return (moment or MIN_DATE, str(doc["_id"]))


OPEN = "-"
