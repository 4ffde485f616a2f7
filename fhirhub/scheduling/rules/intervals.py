"""Half-open time intervals [start, end) and set operations on sorted lists of them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple


class Interval(NamedTuple):
    start: datetime
    end: datetime

    def overlaps(self, other: Interval) -> bool:
        return self.start < other.end and other.start < self.end

    def contains(self, other: Interval) -> bool:
        return self.start <= other.start and other.end <= self.end


def normalize(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, merged, without empty intervals."""
    out: list[Interval] = []
    for item in sorted(i for i in intervals if i.start < i.end):
        if out and item.start <= out[-1].end:
            if item.end > out[-1].end:
                out[-1] = Interval(out[-1].start, item.end)
        else:
            out.append(item)
    return out


def subtract(base: Iterable[Interval], removed: Iterable[Interval]) -> list[Interval]:
    result = normalize(base)
    for cut in normalize(removed):
        next_result: list[Interval] = []
        for item in result:
            if not item.overlaps(cut):
                next_result.append(item)
                continue
            if item.start < cut.start:
                next_result.append(Interval(item.start, cut.start))
            if cut.end < item.end:
                next_result.append(Interval(cut.end, item.end))
        result = next_result
    return result


def intersect(a: Iterable[Interval], b: Iterable[Interval]) -> list[Interval]:
    left, right = normalize(a), normalize(b)
    out: list[Interval] = []
    i = j = 0
    while i < len(left) and j < len(right):
        start = max(left[i].start, right[j].start)
        end = min(left[i].end, right[j].end)
        if start < end:
            out.append(Interval(start, end))
        if left[i].end < right[j].end:
            i += 1
        else:
            j += 1
    return out


def covers(intervals: Iterable[Interval], wanted: Interval) -> bool:
    return any(i.contains(wanted) for i in normalize(intervals))
