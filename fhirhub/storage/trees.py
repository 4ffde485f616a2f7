"""The bucket trees a search walks (walk.py): `_id` order and date order."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from fhirhub.fhir.search.idorder import HEX, ORDER_DEPTH, bucket_key, id_digits
from fhirhub.fhir.search.keys import DATE_KEYS, ORDER_KEYS, bucket_days
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
    node = a bucket ('' is the whole range; decade, year, month, day), within the days its
    keys span (search_stats). Documents tie-break by `_id`; ranges without a start come
    first (the open bucket); resources without the parameter are not in the tree (searches
    add them after it). `_lastUpdated` keys have no decade level: the root's children are
    years. A bucket's measure is its share of the days."""

    resource_type: str
    code: str
    first_day: date
    last_day: date
    with_open: bool
    field: str = ""  # the document field ordered by (default s_<code>__lo)
    decades: bool = True
    root: str = ""

    def children(self, node: str, reverse: bool) -> list[str]:
        first, last = self.first_day, self.last_day
        if node == "":
            if self.decades:
                found = [f"{d:03d}" for d in range(first.year // 10, last.year // 10 + 1)]
            else:
                found = [f"{y:04d}" for y in range(first.year, last.year + 1)]
            if self.with_open:
                found.insert(0, OPEN)
        elif node == OPEN:
            found = []
        elif len(node) == 3:
            years = range(max(int(node) * 10, first.year), min(int(node) * 10 + 9, last.year) + 1)
            found = [f"{y:04d}" for y in years]
        elif len(node) == 4:
            found = [f"{node}-{m:02d}" for m in range(1, 13)]
        else:
            start = date(int(node[:4]), int(node[5:7]), 1)
            days = (bucket_days(node)[1] - start).days
            found = [f"{node}-{d:02d}" for d in range(1, days + 1)]
        found = [b for b in found if b == OPEN or self._days(b) > 0]
        return list(reversed(found)) if reverse else found

    def is_leaf(self, node: str) -> bool:
        return len(node) == 10 or node == OPEN

    def condition(self, node: str) -> dict[str, Any]:
        if node == "":
            return {"t": self.resource_type}
        return {DATE_KEYS: f"{self.code}<{node}"}

    def _days(self, node: str) -> int:
        start, end = bucket_days(node)
        return max(0, (min(end, self.last_day + DAY) - max(start, self.first_day)).days)

    def measure(self, node: str) -> float:
        total = (self.last_day - self.first_day).days + 1 + int(self.with_open)
        if node == "":
            return 1.0
        if node == OPEN:
            return 1.0 / total
        return self._days(node) / total

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


DAY = timedelta(days=1)
OPEN = "-"
