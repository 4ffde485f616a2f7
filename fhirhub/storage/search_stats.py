"""Which days each date parameter's keys span, per resource type (`search_stats`).

An open range (`date=ge2026-11-01`, `birthdate=lt1950`) becomes the date buckets between
its end and the oldest or newest day stored, and a date sort walks only those days; these
extents bound both. A write widens them before its document is inserted, so a stored
resource always lies within them. Each process remembers what it already widened, so after
the first few writes a write costs nothing here; a search reads the current extents once
(they may have been widened by another process a moment ago).

A widening inserts one row per new bound (type, field, value; the `_id` makes it unique)
and never updates: FerretDB runs `$min`/`$max` as read, compute, write, so processes
widening one document at once lost bounds (8 racing writers kept 5 of 8 day bounds; the
upserts of a new `_id` also collided, a 500 on a create). Reading takes each field's
minimum or maximum over the type's rows, which grow only past the known bounds.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pymongo.database import Database
from pymongo.errors import BulkWriteError

STATS = "search_stats"
# Marker of the stored layout (index as text, search keys, history keys): set on a new
# database and by `fhirhub reindex`, which migrates an older one.
LAYOUT = "~layout"
LAYOUT_VERSION = 3  # 3: extents as rows of bounds
_SEP = "~"
DUPLICATE_KEY = 11000


@dataclass(frozen=True)
class Extent:
    """First and last day (yyyymmdd) of a parameter's start buckets and (ranges over a
    day) end buckets."""

    lo: tuple[int, int] | None = None
    hi: tuple[int, int] | None = None
    open_lo: bool = False
    open_hi: bool = False


class SearchStats:
    def __init__(self, db: Database):
        self.collection = db[STATS]
        self._known: dict[str, dict[str, int]] = {}
        self._lock = threading.Lock()

    def widen(self, entries: Iterable[tuple[str, Mapping[str, Mapping[str, int]]]]) -> None:
        """Make the extents cover (type, {code: date_extent}) entries; one update per type
        whose extents grow."""
        wanted: dict[str, dict[str, dict[str, int]]] = {}
        for resource_type, extents in entries:
            known = self._known.get(resource_type, {})
            for code, extent in extents.items():
                for part, year in extent.items():
                    for op, field in _fields(code, part):
                        have = known.get(field)
                        if have is not None and (year >= have if op == "$min" else year <= have):
                            continue
                        ops = wanted.setdefault(resource_type, {}).setdefault(op, {})
                        current = ops.get(field)
                        ops[field] = year if current is None else _pick(op, current, year)
        rows = [
            _row(resource_type, field, year)
            for resource_type, update in wanted.items()
            for fields in update.values()
            for field, year in fields.items()
        ]
        if rows:
            self._insert(rows)
        with self._lock:
            for resource_type, update in wanted.items():
                known = self._known.setdefault(resource_type, {})
                for op, fields in update.items():
                    for field, year in fields.items():
                        have = known.get(field)
                        known[field] = year if have is None else _pick(op, have, year)

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        try:
            self.collection.insert_many(rows, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors") or []
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise  # only "already recorded" is fine

    def extents(self, resource_type: str) -> dict[str, Extent]:
        values: dict[str, int] = {}
        for row in self.collection.find({"t": resource_type}, {"f": 1, "v": 1}):
            field, year = row.get("f"), row.get("v")
            if isinstance(field, str) and isinstance(year, int):
                have = values.get(field)
                values[field] = year if have is None else _pick(_op(field), have, year)
        return parse(values)

    def forget(self) -> None:
        with self._lock:
            self._known.clear()


def _row(resource_type: str, field: str, value: int) -> dict[str, Any]:
    return {
        "_id": f"{resource_type}{_SEP}{field}{_SEP}{value}",
        "t": resource_type,
        "f": field,
        "v": value,
    }


def _op(field: str) -> str:
    return "$min" if field.endswith("_min") else "$max"


def _pick(op: str, a: int, b: int) -> int:
    return min(a, b) if op == "$min" else max(a, b)


def _fields(code: str, part: str) -> list[tuple[str, str]]:
    if part in ("lo", "hi"):
        return [("$min", f"{code}{_SEP}{part}_min"), ("$max", f"{code}{_SEP}{part}_max")]
    return [("$max", f"{code}{_SEP}{part}")]  # open_lo / open_hi flags (1)


def parse(doc: Mapping[str, Any]) -> dict[str, Extent]:
    raw: dict[str, dict[str, int]] = {}
    for field, value in doc.items():
        code, sep, part = field.rpartition(_SEP)
        if sep and isinstance(value, int):
            raw.setdefault(code, {})[part] = value
    out: dict[str, Extent] = {}
    for code, parts in raw.items():

        def span(name: str, p: dict[str, int] = parts) -> tuple[int, int] | None:
            low, high = p.get(f"{name}_min"), p.get(f"{name}_max")
            return (low, high) if low is not None and high is not None else None

        out[code] = Extent(
            lo=span("lo"),
            hi=span("hi"),
            open_lo=bool(parts.get("open_lo")),
            open_hi=bool(parts.get("open_hi")),
        )
    return out
