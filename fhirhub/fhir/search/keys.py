"""Search keys: the plain equality values a search reaches its candidates by (pure).

FerretDB 1.24 hands PostgreSQL only equality (no ranges, regex, `$in` or `$or`), so every
search parameter type is given keys that a query can name with `field == value`:
- token, uri, composite: the code (`gender=female`, `code=8867-4`);
- reference: the target's id (`subject=123`), absolute URLs whole; compartments
  (`comp=Patient/123`);
- string: prefixes of the normalised value (`name=smi`), so a prefix search is one key;
- date: buckets of the range's start at decade, year, month and day (`date<2026-11`), and
  of its end for ranges longer than a day (`date>2027`), so a range is a union of a few;
- the resource's own place in `_id` order (`kb`, see idorder.py).

Keys select candidates only: the same request's exact filter decides the answer, so a key
may be coarser than the query (a longer prefix, a code in another system).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fhirhub.fhir.search.values import MAX_DATE, MIN_DATE

# Document fields holding keys, by kind (one GIN index each on the embedded database). Keys
# of different fields can be combined in one query (a code AND a date bucket).
TOKEN_KEYS = "kt"  # tokens, uris, composites
REFERENCE_KEYS = "kr"  # references and compartments
STRING_KEYS = "ks"  # string prefixes
DATE_KEYS = "kd"  # date buckets (also _lastUpdated)
ORDER_KEYS = "kb"  # _id order buckets
KEY_FIELDS = (TOKEN_KEYS, REFERENCE_KEYS, STRING_KEYS, DATE_KEYS, ORDER_KEYS)

# Prefix lengths a string value is keyed by; a query of another length uses the longest
# shorter one. One-letter searches have no key (they select a large share anyway).
PREFIX_LENGTHS = (2, 3, 4, 6, 8, 12)
# A range longer than this also gets keys for its end.
POINT = timedelta(days=1)
OPEN_START = "-"  # the bucket of ranges without a start
OPEN_END = "+"  # ... and without an end
MISSING_BUCKET = "?"  # the bucket of resources without a value for the parameter
COMPARTMENT_CODE = "comp"
LAST_UPDATED = "_lastUpdated"


def token_key(code: str, value: str) -> str:
    return f"{code}={value}"


def string_prefix(normalized: str) -> str | None:
    """The key prefix for a normalised query value (None: too short to have a key)."""
    usable = [n for n in PREFIX_LENGTHS if n <= len(normalized)]
    return normalized[: usable[-1]] if usable else None


def string_keys(code: str, normalized: Iterable[str]) -> list[str]:
    keys: list[str] = []
    for value in normalized:
        keys += [f"{code}={value[:n]}" for n in PREFIX_LENGTHS if n <= len(value)]
    return keys


def reference_tail(ref: str) -> str:
    """'Patient/1' and '1' -> '1'; absolute and canonical references stay whole."""
    if "://" not in ref and ref.count("/") == 1:
        return ref.split("/", 1)[1]
    return ref


# -- dates ------------------------------------------------------------------------------


def _day(moment: datetime) -> date:
    return moment.astimezone(UTC).date() if moment.tzinfo else moment.date()


def day_buckets(day: date) -> list[str]:
    """The buckets of one day, coarsest first: decade, year, month, day."""
    iso = day.isoformat()
    return [iso[:3], iso[:4], iso[:7], iso]


def date_keys(code: str, low: datetime, high: datetime) -> list[str]:
    keys: list[str] = []
    if low <= MIN_DATE:
        keys.append(f"{code}<{OPEN_START}")
    else:
        keys += [f"{code}<{b}" for b in day_buckets(_day(low))]
    if high - low > POINT:
        if high >= MAX_DATE:
            keys.append(f"{code}>{OPEN_END}")
        else:
            keys += [f"{code}>{b}" for b in day_buckets(_day(high))]
    return keys


def updated_keys(moment: datetime) -> list[str]:
    """_lastUpdated: year, month and day of the instant."""
    iso = _day(moment).isoformat()
    return [f"{LAST_UPDATED}<{iso[:4]}", f"{LAST_UPDATED}<{iso[:7]}", f"{LAST_UPDATED}<{iso}"]


def day_number(day: date) -> int:
    """A day as the integer yyyymmdd (how extents store it)."""
    return day.year * 10000 + day.month * 100 + day.day


def number_day(number: int) -> date:
    return date(number // 10000, number // 100 % 100, number % 100)


def date_extent(low: datetime, high: datetime) -> dict[str, int]:
    """What a stored range adds to its parameter's extent (search_stats): the days its
    keys lie in, and whether it uses an open bucket."""
    extent: dict[str, int] = {}
    if low <= MIN_DATE:
        extent["open_lo"] = 1
    else:
        extent["lo"] = day_number(_day(low))
    if high - low > POINT:
        if high >= MAX_DATE:
            extent["open_hi"] = 1
        else:
            extent["hi"] = day_number(_day(high))
    return extent


def cover(start: date, end: date, decades: bool = True) -> list[str]:
    """Buckets (decade/year/month/day) covering the days [start, end); a run of more than
    two buckets of one parent is replaced by the parent: a few more candidates, fewer
    queries. `decades`: whether the keys have a decade level (_lastUpdated has none)."""
    keys: list[str] = []
    day = start
    while day < end:
        bucket, following = _largest_aligned(day, end, decades)
        keys.append(bucket)
        day = following
    return _coarsen(keys, 3 if decades else 4)


def _largest_aligned(day: date, end: date, decades: bool) -> tuple[str, date]:
    if day.month == 1 and day.day == 1:
        if decades and day.year % 10 == 0 and day.year + 10 <= 9999:
            decade_end = date(day.year + 10, 1, 1)
            if decade_end <= end:
                return day.isoformat()[:3], decade_end
        if day.year < 9999:
            year_end = date(day.year + 1, 1, 1)
            if year_end <= end:
                return day.isoformat()[:4], year_end
    if day.day == 1:
        month_end = _next_month(day)
        if month_end <= end:
            return day.isoformat()[:7], month_end
    return day.isoformat(), day + timedelta(days=1)


def _next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


def _parent(bucket: str) -> str:
    return {10: bucket[:7], 7: bucket[:4], 4: bucket[:3], 3: bucket[:3]}[len(bucket)]


def _coarsen(keys: list[str], coarsest: int) -> list[str]:
    """Replace runs of more than two same-level buckets sharing a parent by the parent."""
    changed = True
    while changed:
        changed = False
        out: list[str] = []
        i = 0
        while i < len(keys):
            level = len(keys[i])
            j = i
            while (
                j < len(keys)
                and len(keys[j]) == level
                and level > coarsest
                and _parent(keys[j]) == _parent(keys[i])
            ):
                j += 1
            if j - i > 2:
                parent = _parent(keys[i])
                if not out or out[-1] != parent:
                    out.append(parent)
                changed = True
                i = j
            else:
                out.append(keys[i])
                i += 1
        keys = list(dict.fromkeys(k for k in out if not any(_contains(p, k) for p in out)))
    return keys


def _contains(outer: str, inner: str) -> bool:
    return outer != inner and inner.startswith(outer)


def bucket_days(bucket: str) -> tuple[date, date]:
    """[first day, day after the last) of a bucket."""
    if len(bucket) == 3:
        year = int(bucket) * 10
        return date(max(year, 1), 1, 1), date(min(year + 10, 9999), 1, 1)
    if len(bucket) == 4:
        year = int(bucket)
        return date(year, 1, 1), date(year + 1, 1, 1) if year < 9999 else date(9999, 12, 31)
    if len(bucket) == 7:
        first = date(int(bucket[:4]), int(bucket[5:7]), 1)
        return first, _next_month(first)
    first = date.fromisoformat(bucket)
    return first, first + timedelta(days=1)


def as_day(moment: datetime) -> date:
    return _day(moment)


def keys_of(index: dict[str, Any], field: str) -> list[str]:
    value = index.get(field)
    return value if isinstance(value, list) else []
