"""Which days each date parameter's keys span, per resource type (`search_stats`).

An open range (`date=ge2026-11-01`, `birthdate=lt1950`) becomes the date buckets between
its end and the oldest or newest day stored, and a date sort walks only those days; these
extents bound both. A write
widens them before its document is inserted, so a stored resource always lies within
them. Each process remembers what it already widened, so after the first few writes a
write costs nothing here; a search reads the current extents once (they may have been
widened by another process a moment ago).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pymongo.database import Database

STATS = "search_stats"
# Marker of the stored layout (index as text, search keys, history keys): set on a new
# database and by `fhirhub reindex`, which migrates an older one.
LAYOUT = "~layout"
LAYOUT_VERSION = 2
_SEP = "~"


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
        for resource_type, update in wanted.items():
            self.collection.update_one({"_id": resource_type}, update, upsert=True)
            with self._lock:
                known = self._known.setdefault(resource_type, {})
                for op, fields in update.items():
                    for field, year in fields.items():
                        have = known.get(field)
                        known[field] = year if have is None else _pick(op, have, year)

    def extents(self, resource_type: str) -> dict[str, Extent]:
        doc = self.collection.find_one({"_id": resource_type}) or {}
        return parse(doc)

    def forget(self) -> None:
        with self._lock:
            self._known.clear()


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
