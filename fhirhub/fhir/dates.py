"""FHIR date/dateTime/instant values as UTC periods, honouring precision (pure).

'2020' means all of 2020, '2020-03-04T10:00' the whole minute; a value without a time
zone is taken as UTC (R4 leaves it to the server)."""

from __future__ import annotations

import re
from calendar import monthrange
from datetime import UTC, datetime, timedelta, timezone, tzinfo

from fhirhub.fhir.errors import BadRequest

_PATTERN = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d{1,9}))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def parse_period(value: str, name: str = "date") -> tuple[datetime, datetime]:
    """Return [start, end) for a FHIR date/dateTime/instant string."""
    match = _PATTERN.match(value.strip())
    if not match:
        raise BadRequest(f"{name}: {value[:40]!r} is not a valid FHIR date or dateTime")
    g = match.groupdict()
    try:
        year = int(g["y"])
        if g["m"] is None:
            start = datetime(year, 1, 1, tzinfo=UTC)
            return start, start.replace(year=year + 1)
        month = int(g["m"])
        if g["d"] is None:
            start = datetime(year, month, 1, tzinfo=UTC)
            return start, start + timedelta(days=monthrange(year, month)[1])
        day = int(g["d"])
        if g["H"] is None:
            start = datetime(year, month, day, tzinfo=UTC)
            return start, start + timedelta(days=1)
        tz = _offset(g["tz"])
        fraction = g["f"] or ""
        micro = int((fraction + "000000")[:6]) if fraction else 0
        local = datetime(
            year, month, day, int(g["H"]), int(g["M"]), int(g["S"] or 0), micro, tzinfo=tz
        )
        start = local.astimezone(UTC)
        if g["S"] is None:
            step = timedelta(minutes=1)
        elif not fraction:
            step = timedelta(seconds=1)
        else:
            step = timedelta(microseconds=max(1, 10 ** (6 - min(len(fraction), 6))))
        return start, start + step
    except ValueError as exc:
        raise BadRequest(f"{name}: {value[:40]!r} is not a valid date ({exc})") from None


def _offset(raw: str | None) -> tzinfo:
    if raw is None or raw == "Z":
        return UTC
    sign = 1 if raw[0] == "+" else -1
    hours, minutes = int(raw[1:3]), int(raw[4:6])
    return timezone(sign * timedelta(hours=hours, minutes=minutes))
