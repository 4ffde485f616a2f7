"""Waitlist rules (pure): which waitlisted request a freed time goes to, and the offer text.

A waitlist entry is an Appointment with status `waitlist` (R4: "placed on a waitlist, to be
scheduled when a slot is available"): the patient and the clinician as participants,
`requestedPeriod` the times the patient can come (none: any time), `minutesDuration` how
long (default: the freed time's length, at most an hour), `created` its place in the queue.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fhirhub.fhir.dates import parse_period
from fhirhub.scheduling.rules.intervals import Interval

WAITLIST = "waitlist"
MAX_DEFAULT = timedelta(hours=1)


def wanted_interval(entry: dict[str, Any], freed: Interval) -> Interval | None:
    """The part of `freed` this entry would take (from its start), or None if it does not
    fit: too short, or outside every requestedPeriod."""
    minutes = entry.get("minutesDuration")
    if isinstance(minutes, int) and minutes > 0:
        length = timedelta(minutes=minutes)
    else:
        length = min(freed.end - freed.start, MAX_DEFAULT)
    offered = Interval(freed.start, freed.start + length)
    if offered.end > freed.end:
        return None
    periods = [p for p in entry.get("requestedPeriod") or [] if isinstance(p, dict)]
    if not periods:
        return offered
    for period in periods:
        low = parse_period(period["start"], "start")[0] if period.get("start") else None
        high = parse_period(period["end"], "end")[1] if period.get("end") else None
        if (low is None or low <= offered.start) and (high is None or offered.end <= high):
            return offered
    return None


def queue_order(entry: dict[str, Any]) -> tuple[str, str]:
    """First come, first served: by `created` (the write time when absent), then id."""
    created = entry.get("created") or (entry.get("meta") or {}).get("lastUpdated") or ""
    return str(created), str(entry.get("id", ""))


def first_in_line(
    entries: list[dict[str, Any]], freed: Interval, skip: set[str], now: datetime
) -> list[tuple[dict[str, Any], Interval]]:
    """Entries that could take the freed time, in queue order (`skip`: ids offered it
    already)."""
    out: list[tuple[dict[str, Any], Interval]] = []
    if freed.start <= now:
        return out
    for entry in sorted(entries, key=queue_order):
        if entry.get("status") != WAITLIST or str(entry.get("id")) in skip:
            continue
        interval = wanted_interval(entry, freed)
        if interval is not None:
            out.append((entry, interval))
    return out


OFFER_TEMPLATES: dict[str, tuple[str, str]] = {
    "en": (
        "An earlier appointment is available",
        "An earlier appointment has become available on {date} at {time} ({zone}) with {who} "
        "at {where}. It is held for you for a short time: to take it, confirm it in your app "
        "or contact the clinic{phone}.",
    ),
    "es": (
        "Hay una cita más temprana disponible",
        "Se ha liberado una cita el {date} a las {time} ({zone}) con {who} en {where}. La "
        "reservamos para usted por poco tiempo: para tomarla, confírmela en su aplicación o "
        "comuníquese con la clínica{phone}.",
    ),
}
