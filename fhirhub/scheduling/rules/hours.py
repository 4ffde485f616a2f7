"""Weekly hours in an actor's time zone -> concrete intervals (pure).

`availableTime` (PractitionerRole, HealthcareService: daysOfWeek, allDay,
availableStartTime, availableEndTime) is local wall-clock time: a 09:00 start stays 09:00
across a DST change, so each day is built in the zone and only then turned into UTC
(zoneinfo). A wall time that does not exist that day (skipped by a spring-forward) moves
forward with the clock (fold=0 then normalised), one that occurs twice takes the first.
`notAvailable.during` periods (holidays, leave) are removed afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fhirhub.fhir.dates import parse_period
from fhirhub.scheduling.rules.intervals import Interval, normalize, subtract

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _time(value: str | None, default: time) -> time:
    if not value:
        return default
    parts = [int(p) for p in value.split(".")[0].split(":")] + [0, 0]
    return time(parts[0] % 24, parts[1], parts[2])


def local(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of wall-clock `at` on `day` in `zone`. zoneinfo reads a wall time a
    spring-forward skips with the offset before the gap (02:30 -> 03:30 new time) and one a
    fall-back repeats as its first occurrence (fold=0)."""
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def weekly(available: Iterable[dict[str, Any]], zone: ZoneInfo, window: Interval) -> list[Interval]:
    """The intervals of `availableTime` entries that fall into `window`."""
    first = window.start.astimezone(zone).date() - timedelta(days=1)
    last = window.end.astimezone(zone).date() + timedelta(days=1)
    out: list[Interval] = []
    entries = list(available)
    day = first
    while day <= last:
        code = DAYS[day.weekday()]
        for entry in entries:
            days = entry.get("daysOfWeek") or list(DAYS)
            if code not in days:
                continue
            if entry.get("allDay"):
                start, end = (
                    local(day, time(0), zone),
                    local(day + timedelta(days=1), time(0), zone),
                )
            else:
                start_time = _time(entry.get("availableStartTime"), time(0))
                end_text = entry.get("availableEndTime")
                start = local(day, start_time, zone)
                if end_text and _time(end_text, time(0)) > start_time:
                    end = local(day, _time(end_text, time(0)), zone)
                else:  # no end, or an end at/before the start: until midnight
                    end = local(day + timedelta(days=1), time(0), zone)
            out.append(Interval(start, end))
        day += timedelta(days=1)
    clipped = [Interval(max(i.start, window.start), min(i.end, window.end)) for i in out]
    return normalize(clipped)


def not_available(entries: Iterable[dict[str, Any]], zone: ZoneInfo) -> list[Interval]:
    """`notAvailable.during` periods; dates without a time are whole local days."""
    out: list[Interval] = []
    for entry in entries:
        during = entry.get("during") or {}
        start_text, end_text = during.get("start"), during.get("end")
        if not start_text and not end_text:
            continue
        start = (
            _bound(start_text, zone, upper=False)
            if start_text
            else datetime.min.replace(tzinfo=UTC)
        )
        end = _bound(end_text, zone, upper=True) if end_text else datetime.max.replace(tzinfo=UTC)
        out.append(Interval(start, end))
    return normalize(out)


def _bound(text: str, zone: ZoneInfo, upper: bool) -> datetime:
    if "T" not in text:  # a date (or year-month): local midnight(s)
        start, end = parse_period(text)
        day = (end - timedelta(days=1)).date() if upper else start.date()
        return local(day + timedelta(days=1) if upper else day, time(0), zone)
    start, end = parse_period(text)
    return end if upper else start


def hours(resource: dict[str, Any], zone: ZoneInfo, window: Interval) -> list[Interval] | None:
    """Open hours of a PractitionerRole or HealthcareService in `window`; None when it
    states none (then it does not limit availability)."""
    available = resource.get("availableTime")
    if not available:
        return None
    open_hours = weekly(available, zone, window)
    return subtract(open_hours, not_available(resource.get("notAvailable") or [], zone))
