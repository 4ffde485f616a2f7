"""What an Appointment occupies (pure): its period, the actors it holds, claim keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fhirhub.fhir.dates import parse_period
from fhirhub.scheduling.rules.intervals import Interval

# Statuses that hold the actors' time. proposed, waitlist, cancelled, noshow and
# entered-in-error do not.
BLOCKING = frozenset({"pending", "booked", "arrived", "fulfilled", "checked-in"})
# Actors that cannot be in two appointments at once (a HealthcareService can).
EXCLUSIVE = frozenset({"Practitioner", "PractitionerRole", "Location", "Device", "Patient"})
GRANULARITY = timedelta(minutes=5)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def period(appointment: dict[str, Any]) -> Interval | None:
    start, end = appointment.get("start"), appointment.get("end")
    if not isinstance(start, str) or not isinstance(end, str):
        return None
    return Interval(parse_period(start, "start")[0], parse_period(end, "end")[0])


def blocking(appointment: dict[str, Any] | None) -> bool:
    return bool(appointment) and (appointment or {}).get("status") in BLOCKING


def actors(appointment: dict[str, Any]) -> list[str]:
    """References of the participants whose time it takes ("Type/id"), in order."""
    out: list[str] = []
    for participant in appointment.get("participant") or []:
        if not isinstance(participant, dict):
            continue
        if participant.get("status") == "declined":
            continue
        if participant.get("required") == "information-only":
            continue
        reference = (participant.get("actor") or {}).get("reference")
        if not isinstance(reference, str) or reference.count("/") != 1:
            continue
        if reference.split("/")[0] in EXCLUSIVE and reference not in out:
            out.append(reference)
    return out


def patients(appointment: dict[str, Any]) -> list[str]:
    return [a for a in actors_all(appointment) if a.startswith("Patient/")]


def actors_all(appointment: dict[str, Any]) -> list[str]:
    out = []
    for participant in appointment.get("participant") or []:
        reference = ((participant or {}).get("actor") or {}).get("reference")
        if isinstance(reference, str):
            out.append(reference)
    return out


def buckets(interval: Interval, step: timedelta = GRANULARITY) -> list[int]:
    """The `step` buckets (minutes since 1970) [start, end) touches."""
    size = int(step.total_seconds() // 60)
    first = int((interval.start - EPOCH).total_seconds() // 60) // size * size
    last_minute = (interval.end - EPOCH).total_seconds() / 60
    out = []
    minute = first
    while minute < last_minute:
        out.append(minute)
        minute += size
    return out


def claim_keys(actor_refs: list[str], interval: Interval) -> list[str]:
    """One key per actor and 5-minute bucket: two appointments overlap in time for an actor
    exactly when they share a key (for times on the 5-minute grid; off-grid edges count
    their whole bucket)."""
    return [f"{actor}|{bucket}" for actor in actor_refs for bucket in buckets(interval)]
