"""When the seeded clinicians can be booked, as FHIR states it: PractitionerRole.availableTime
(office hours with a lunch break, the same hours seed/calendar.py places visits in),
notAvailable (the holidays the clinics close on) and one Schedule per role (its planning
horizon), so `Appointment/$find` finds free times right after `make run`."""

from __future__ import annotations

from datetime import date, timedelta

from fhirhub.seed.calendar import SESSIONS
from fhirhub.seed.elements import LOCAL_SID, Json, conditional_entry, identifier, ref
from fhirhub.seed.models import Clinician

WEEKDAYS = ["mon", "tue", "wed", "thu", "fri"]
ZONE = "America/New_York"  # the seed's addresses are around Boston
TIMEZONE = "http://hl7.org/fhir/StructureDefinition/timezone"
SCHEDULE_SYSTEM = LOCAL_SID + "schedule"
HORIZON_DAYS = 183  # bookings are made up to about six months ahead


def zone_extension() -> Json:
    return {"url": TIMEZONE, "valueCode": ZONE}


def available_time(emergency: bool) -> list[Json]:
    # Emergency physicians work shifts around the clock; clinic physicians office hours.
    if emergency:
        return [{"daysOfWeek": [*WEEKDAYS, "sat", "sun"], "allDay": True}]
    return [
        {
            "daysOfWeek": list(WEEKDAYS),
            "availableStartTime": begin.isoformat(),
            "availableEndTime": end.isoformat(),
        }
        for begin, end in SESSIONS
    ]


def not_available(closed: list[tuple[date, str]], anchor: date) -> list[Json]:
    """The holidays within the planning horizon, each a whole local day."""
    last = anchor + timedelta(days=HORIZON_DAYS)
    return [
        {
            "description": f"Clinic closed: {name}",
            "during": {"start": d.isoformat(), "end": d.isoformat()},
        }
        for d, name in closed
        if anchor <= d <= last
    ]


def schedule_entry(
    urn: str, clinician: Clinician, role_urn: str, practitioner_urn: str, anchor: date
) -> Json:
    specialty = clinician.specialty
    schedule: Json = {
        "resourceType": "Schedule",
        "identifier": [identifier(SCHEDULE_SYSTEM, f"schedule-{clinician.npi}")],
        "active": True,
        "serviceType": [specialty.service.concept()],
        "specialty": [specialty.practice.concept()],
        "actor": [ref(role_urn, clinician.name), ref(practitioner_urn, clinician.name)],
        "planningHorizon": {
            "start": anchor.isoformat(),
            "end": (anchor + timedelta(days=HORIZON_DAYS)).isoformat(),
        },
        "comment": f"Office hours of {clinician.name} at {clinician.site.name}",
    }
    return conditional_entry(urn, schedule, SCHEDULE_SYSTEM, f"schedule-{clinician.npi}")
