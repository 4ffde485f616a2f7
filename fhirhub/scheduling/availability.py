"""Free time of bookable practitioner roles, and proposed appointments in it.

A PractitionerRole is the unit that is booked: a practitioner at its location(s), with its
weekly hours (availableTime minus notAvailable) in the location's time zone. Schedules of
the role, practitioner or location limit the window (planningHorizon) and, when they have
free Slots, booking follows the slots. Busy time is every blocking appointment of the
practitioner (under any of its roles), the patient, the location when it is a room (not a
site or building: a clinic sees many patients at once), and busy Slots.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fhirhub.fhir.dates import parse_period
from fhirhub.scheduling.directory import Directory, Resource
from fhirhub.scheduling.rules import appointments as appts
from fhirhub.scheduling.rules.hours import hours, local
from fhirhub.scheduling.rules.intervals import Interval, intersect, normalize, subtract

NAMESPACE = uuid.UUID("9d1f6a4e-2b7c-4c55-9f0e-3c2d8a1b6e77")
BUSY_SLOT = ("busy", "busy-unavailable", "busy-tentative", "entered-in-error")
# Location.physicalType codes of places many appointments share (site, building, wing, ward,
# level, corridor, road, area, jurisdiction); rooms, beds, vehicles... are booked one at a time.
SHARED_PLACES = frozenset({"si", "bu", "wi", "wa", "lvl", "co", "rd", "area", "jdn"})


@dataclass(frozen=True)
class Bookable:
    role: Resource
    practitioner: str | None  # "Practitioner/x"
    location: str | None
    zone: ZoneInfo
    location_booked: bool = True  # the location is a room whose time an appointment takes

    @property
    def role_ref(self) -> str:
        return f"PractitionerRole/{self.role['id']}"


def bookable(directory: Directory, role: Resource) -> Bookable:
    practitioner = (role.get("practitioner") or {}).get("reference")
    locations = [str(r.get("reference")) for r in role.get("location") or []]
    location = locations[0] if locations else None
    return Bookable(
        role,
        practitioner if isinstance(practitioner, str) else None,
        location,
        directory.zone(role),
        location is not None and not shared_place(directory.read(location)),
    )


def at_location(directory: Directory, item: Bookable, location: str) -> Bookable:
    """The same role booked at one of its locations."""
    booked = not shared_place(directory.read(location))
    return Bookable(item.role, item.practitioner, location, item.zone, booked)


def shared_place(location: Resource | None) -> bool:
    codes = {
        c.get("code")
        for c in ((location or {}).get("physicalType") or {}).get("coding") or []
        if isinstance(c, dict)
    }
    return bool(codes & SHARED_PLACES)


def free_time(
    directory: Directory,
    item: Bookable,
    window: Interval,
    patients: list[str],
    exclude: frozenset[str] = frozenset(),
) -> list[Interval]:
    """`exclude`: appointment ids whose time does not count as busy (the held appointment
    being booked, the one being rescheduled)."""
    actors = [a for a in (item.role_ref, item.practitioner, item.location) if a]
    schedules = directory.schedules_of(actors)
    window = _horizon(schedules, window)
    if window.start >= window.end:
        return []
    base = hours(item.role, item.zone, window)
    slots = [s for sched in schedules for s in directory.slots_of(str(sched["id"]), window)]
    free_slots = [p for s in slots if s.get("status") == "free" and (p := appts.period(s))]
    if free_slots:
        base = intersect(base, free_slots) if base is not None else normalize(free_slots)
    if base is None:
        return []  # states neither hours nor slots: not bookable online
    location = directory.read(item.location) if item.location else None
    if location and location.get("hoursOfOperation"):
        opening = [_as_available(h) for h in location["hoursOfOperation"]]
        open_hours = hours({"availableTime": opening}, item.zone, window)
        base = intersect(base, open_hours or [])
    busy = [p for s in slots if s.get("status") in BUSY_SLOT and (p := appts.period(s))]
    room = item.location if item.location_booked else None
    for actor in [item.practitioner or item.role_ref, room, *patients]:
        if actor:
            busy += [
                p
                for a in directory.appointments_of(actor, window)
                if a.get("id") not in exclude and (p := appts.period(a)) is not None
            ]
    return subtract(base, busy)


def _horizon(schedules: list[Resource], window: Interval) -> Interval:
    start, end = window
    for schedule in schedules:
        horizon = schedule.get("planningHorizon") or {}
        if horizon.get("start"):
            start = max(start, parse_period(horizon["start"])[0])
        if horizon.get("end"):
            end = min(end, parse_period(horizon["end"])[1])
    return Interval(start, end)


def _as_available(opening: dict[str, Any]) -> dict[str, Any]:
    out = {"daysOfWeek": opening.get("daysOfWeek"), "allDay": opening.get("allDay")}
    out["availableStartTime"] = opening.get("openingTime")
    out["availableEndTime"] = opening.get("closingTime")
    return out


def starts(
    free: list[Interval], duration: timedelta, zone: ZoneInfo, earliest: datetime
) -> Iterator[datetime]:
    """Start times on the local quarter-hour grid (5 minutes for short visits) at which
    `duration` fits into a free interval."""
    step = timedelta(minutes=15) if duration >= timedelta(minutes=15) else timedelta(minutes=5)
    for interval in free:
        first = max(interval.start, earliest)
        local_first = first.astimezone(zone)
        midnight = local(local_first.date(), time(0), zone)
        offset = (first - midnight) % step
        moment = first if not offset else first + (step - offset)
        while moment + duration <= interval.end:
            yield moment
            moment += step


def proposal(
    item: Bookable,
    start: datetime,
    duration: timedelta,
    patients: list[str],
    details: dict[str, Any],
) -> Resource:
    participants: list[dict[str, Any]] = [
        {"actor": {"reference": p}, "required": "required", "status": "needs-action"}
        for p in patients
    ]
    if item.practitioner:
        participants.append(
            {
                "actor": {"reference": item.practitioner},
                "required": "required",
                "status": "needs-action",
            }
        )
    participants.append(
        {
            "actor": {"reference": item.role_ref},
            "required": "information-only",
            "status": "needs-action",
        }
    )
    if item.location:
        participants.append(
            {
                "actor": {"reference": item.location},
                "required": "required" if item.location_booked else "information-only",
                "status": "needs-action",
            }
        )
    end = start + duration
    resource: Resource = {"resourceType": "Appointment", "status": "proposed", **details}
    resource.update(
        start=_instant(start),
        end=_instant(end),
        minutesDuration=int(duration.total_seconds() // 60),
        participant=participants,
    )
    return resource


def proposal_url(resource: Resource) -> str:
    key = "|".join(
        [resource["start"], resource["end"]]
        + [p["actor"]["reference"] for p in resource["participant"]]
    )
    return f"urn:uuid:{uuid.uuid5(NAMESPACE, key)}"


def _instant(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
