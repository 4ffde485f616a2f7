"""Date buckets that hold every match of a date condition (candidates.py offers them as
search keys): where a match's start or end can lie, clipped to the days stored
(search_stats), covered by decade/year/month/day buckets (fhir/search/keys.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fhirhub.fhir.search import keys as k
from fhirhub.storage.search_stats import Extent

MAX_BRANCHES = 16

DAY = timedelta(days=1)


Span = tuple[datetime | None, datetime | None]


@dataclass(frozen=True)
class DateBounds:
    """Where the matches of a date condition are: a start (lo) in one of `starts`, an end
    (hi, of ranges longer than a day) in one of `ends`, or an open start or end."""

    starts: tuple[Span, ...]  # lo in [a, b)
    ends: tuple[Span, ...] = ()  # hi in (a, b]
    open_lo: bool = False
    open_hi: bool = False


def date_bounds(prefix: str, qlo: datetime, qhi: datetime, point: bool) -> DateBounds:
    """Where a condition's matches start or end. A stored range [lo, hi) has buckets for
    lo, and for hi when longer than a day (keys.date_keys); `point` (an instant:
    _lastUpdated) has only lo."""
    if point:
        bounds = {
            "eq": (qlo, qhi),
            "gt": (qhi, None),
            "sa": (qhi, None),
            "ge": (qlo, None),
            "lt": (None, qlo),
            "eb": (None, qlo),
            "le": (None, qhi),
        }
        if prefix in bounds:
            return DateBounds((bounds[prefix],))
        if prefix == "ne":
            return DateBounds(((None, qlo), (qhi, None)))
        return DateBounds(((None, None),))  # ap: wide; the exact filter decides
    if prefix == "eq":
        return DateBounds(((qlo, qhi),))
    if prefix == "sa":
        return DateBounds(((qhi, None),))
    if prefix in ("lt", "eb", "le"):
        return DateBounds(((None, qhi if prefix == "le" else qlo),), open_lo=True)
    # gt, ge, ne, ap: may extend past the query's end
    begin: datetime | None = min(qlo, qhi - DAY) if prefix in ("ge", "ne") else qhi - DAY
    if prefix == "ap":
        begin = None
    starts: tuple[Span, ...] = ((begin, None),)
    if prefix in ("ne", "ap"):
        starts += ((None, qlo if prefix == "ne" else None),)
    return DateBounds(starts, ((qhi, None),), open_lo=prefix in ("ne", "ap"), open_hi=True)


def bucket_keys(
    code: str, bounds: DateBounds, extent: Extent | None, point: bool
) -> list[str] | None:
    """The buckets holding every match, within the stored days; None when no bucket set is
    small enough."""
    if extent is None:
        return []  # no stored value of this parameter at all
    keys: list[str] = []
    for low, high in bounds.starts:
        span = _days(low, high, extent.lo)
        if span is not None:
            keys += [f"{code}<{b}" for b in k.cover(*span, decades=not point)]
    for low, high in bounds.ends:
        span = _days(low, high, extent.hi)
        if span is not None:
            keys += [f"{code}>{b}" for b in k.cover(*span, decades=not point)]
    if bounds.open_lo and extent.open_lo:
        keys.append(f"{code}<{k.OPEN_START}")
    if bounds.open_hi and extent.open_hi:
        keys.append(f"{code}>{k.OPEN_END}")
    return list(dict.fromkeys(keys)) if len(keys) <= 4 * MAX_BRANCHES else None


def _days(
    low: datetime | None, high: datetime | None, days: tuple[int, int] | None
) -> tuple[Any, Any] | None:
    """Days [start, end) of a bound within the stored days (None: nothing stored there)."""
    if days is None:
        return None
    first, last = k.number_day(days[0]), k.number_day(days[1]) + DAY
    start = first if low is None else max(first, k.as_day(low))
    end = last if high is None else min(last, k.as_day(high - timedelta(microseconds=1)) + DAY)
    if start >= end:
        return None
    return start, end
