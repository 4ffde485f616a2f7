"""Type and system history newest first, read bucket by bucket (walk.py) instead of
counting and sorting every version (FerretDB does neither in PostgreSQL).

Each version document carries history keys: its type (or `*` for the system history) and
its instant cut at month, day, hour, minute and second (`Observation@2026-12-03T12:26`).
A page walks those buckets back from the newest, within the days versions were written
(search_stats), so it reads a few buckets and about a page of versions however long the
history is. Versions in the same second are ordered by `_id` (descending, like the time).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fhirhub.storage.documents import VERSION_TYPE

HISTORY_KEYS = "hk"
HISTORY_CODE = "_history"  # its extents in search_stats
SYSTEM = "*"
# Prefix lengths of an ISO instant: month, day, hour, minute, second.
LEVELS = (7, 10, 13, 16, 19)
Document = dict[str, Any]


def second_number(moment: datetime) -> int:
    """An instant to the second as the integer yyyymmddHHMMSS (how extents store it)."""
    return int(moment.astimezone(UTC).strftime("%Y%m%d%H%M%S"))


def number_second(number: int) -> datetime:
    return datetime.strptime(str(number), "%Y%m%d%H%M%S").replace(tzinfo=UTC)


def history_keys(resource_type: str, moment: datetime) -> list[str]:
    iso = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return [f"{owner}@{iso[:n]}" for owner in (resource_type, SYSTEM) for n in LEVELS]


def _start(bucket: str) -> datetime:
    full = bucket + "0001-01-01T00:00:00"[len(bucket) :]
    if len(bucket) == 7:
        full = bucket + "-01T00:00:00"
    return datetime.fromisoformat(full).replace(tzinfo=UTC)


def _end(bucket: str) -> datetime:
    start = _start(bucket)
    if len(bucket) == 7:
        return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    step = {10: timedelta(days=1), 13: timedelta(hours=1), 16: timedelta(minutes=1)}
    return start + step.get(len(bucket), timedelta(seconds=1))


@dataclass(frozen=True)
class HistoryTree:
    """Buckets of version instants between `first` and `last` (inclusive)."""

    owner: str  # a resource type or SYSTEM
    first: datetime
    last: datetime
    root: str = ""

    def children(self, node: str, reverse: bool) -> list[str]:
        if node == "":
            found = []
            month = self.first.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            while month <= self.last:
                found.append(month.strftime("%Y-%m"))
                month = _end(month.strftime("%Y-%m"))
        else:
            level = LEVELS[LEVELS.index(len(node)) + 1]
            found = []
            moment, end = _start(node), _end(node)
            step = {10: timedelta(days=1), 13: timedelta(hours=1), 16: timedelta(minutes=1)}
            delta = step.get(level, timedelta(seconds=1))
            while moment < end:
                found.append(moment.strftime("%Y-%m-%dT%H:%M:%S")[:level])
                moment += delta
        found = [b for b in found if self._seconds(b) > 0]
        return list(reversed(found)) if reverse else found

    def is_leaf(self, node: str) -> bool:
        return len(node) == LEVELS[-1]

    def condition(self, node: str) -> dict[str, Any]:
        if node == "":
            return {VERSION_TYPE: self.owner} if self.owner != SYSTEM else {}
        return {HISTORY_KEYS: f"{self.owner}@{node}"}

    def _seconds(self, node: str) -> float:
        start, end = _start(node), _end(node)
        low, high = max(start, self.first), min(end, self.last + timedelta(seconds=1))
        return max(0.0, (high - low).total_seconds())

    def measure(self, node: str) -> float:
        total = max(1.0, (self.last - self.first).total_seconds() + 1)
        return 1.0 if node == "" else self._seconds(node) / total

    def relation(self, node: str, anchor: Any, reverse: bool) -> int:
        return 0  # history pages by offset: no anchor

    def order_key(self, doc: Document) -> Any:
        return (doc["ts"], str(doc["_id"]))
