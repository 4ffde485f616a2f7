"""Appointments: fulfilled ones behind past office visits, booked ones after the anchor date."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from fhirhub.seed.context import ConditionInstance, PatientContext, Visit
from fhirhub.seed.elements import PRIMARY_PERFORMER, Json, Term, fmt_datetime, new_urn
from fhirhub.seed.models import Clinician

SPECIALIST_FOLLOWUP_CHANCE = 0.7
GP_FOLLOWUP_CHANCE = 0.4


def _booked_on(ctx: PatientContext, day: date) -> datetime:
    """When the front desk booked it: office hours on that day."""
    return datetime.combine(day, time(ctx.rng.randint(8, 16), ctx.rng.randrange(0, 60, 5)))


def _appointment(
    ctx: PatientContext,
    status: str,
    clinician: Clinician,
    appointment_type: Term,
    start: datetime,
    end: datetime,
    created: datetime,
    reason: ConditionInstance | None,
    description: str,
) -> Json:
    resource: Json = {
        "resourceType": "Appointment",
        "status": status,
        "serviceType": [clinician.specialty.service.concept()],
        "specialty": [clinician.specialty.practice.concept()],
        "appointmentType": appointment_type.concept(),
    }
    if reason is not None:
        resource["reasonReference"] = [reason.as_ref()]
    resource["description"] = description
    resource["start"] = fmt_datetime(start)
    resource["end"] = fmt_datetime(end)
    resource["minutesDuration"] = int((end - start).total_seconds() // 60)
    resource["created"] = fmt_datetime(created)
    if status == "booked":
        resource["patientInstruction"] = (
            "Please arrive 15 minutes early and bring a list of your medications."
        )
    resource["participant"] = [
        {"actor": ctx.subject(), "required": "required", "status": "accepted"},
        {
            "type": [PRIMARY_PERFORMER.concept()],
            "actor": clinician.practitioner_ref(),
            "required": "required",
            "status": "accepted",
        },
        # Where it happens, not a resource it books: the site holds every clinician's visits
        # at once (a room would be `required`).
        {
            "actor": clinician.site.location_ref(),
            "required": "information-only",
            "status": "accepted",
        },
    ]
    return resource


def add_past_appointment(ctx: PatientContext, visit: Visit) -> None:
    assert visit.appointment_urn is not None and visit.kind.appointment_type is not None
    lead_days = ctx.rng.randint(0, 2) if visit.kind.key == "problem" else ctx.rng.randint(14, 90)
    created = min(
        _booked_on(ctx, visit.start.date() - timedelta(days=lead_days)),
        visit.start - timedelta(hours=1),
    )
    description = f"{visit.kind.type.display} with {visit.clinician.name}"
    resource = _appointment(
        ctx,
        "fulfilled",
        visit.clinician,
        visit.kind.appointment_type,
        visit.start,
        visit.end,
        created,
        visit.condition,
        description,
    )
    ctx.add(visit.appointment_urn, resource)


def _future_slot(
    ctx: PatientContext, clinician: Clinician, earliest: int, latest: int, minutes: int
) -> tuple[datetime, datetime]:
    """A time free for the clinician and the patient in the run's calendar, near a random
    wish (the next free quarter-hour, else a later open day)."""
    day = ctx.anchor + timedelta(days=ctx.rng.randint(earliest, latest))
    if day.weekday() >= 5:
        day += timedelta(days=7 - day.weekday())
    wanted = datetime.combine(day, time(8)) + timedelta(minutes=15 * ctx.rng.randrange(33))
    start = ctx.run.calendar.place(wanted, minutes, [clinician.npi, ctx.urn], +1)
    return start, start + timedelta(minutes=minutes)


def add_future_appointments(ctx: PatientContext) -> None:
    """Everyone has a check-up booked; most patients followed by a specialist also see them soon."""
    rng, kinds = ctx.rng, ctx.vocab.encounter_kinds
    checkup_type, followup_type = (
        kinds["checkup"].appointment_type,
        kinds["followup"].appointment_type,
    )
    assert checkup_type is not None and followup_type is not None
    booked = _booked_on(ctx, ctx.anchor - timedelta(days=rng.randint(1, 45)))
    start, end = _future_slot(ctx, ctx.gp, 14, 150, 30)
    description = f"Annual check-up with {ctx.gp.name}"
    resource = _appointment(
        ctx, "booked", ctx.gp, checkup_type, start, end, booked, None, description
    )
    ctx.add(new_urn(rng), resource)
    followed = [c for c in ctx.chronic if c.clinician.npi != ctx.gp.npi]
    if followed and rng.random() < SPECIALIST_FOLLOWUP_CHANCE:
        condition = rng.choice(followed)
    elif ctx.chronic and rng.random() < GP_FOLLOWUP_CHANCE:
        condition = rng.choice(ctx.chronic)
    else:
        return
    clinician = condition.clinician
    start, end = _future_slot(ctx, clinician, 3, 90, 20)
    booked = _booked_on(ctx, ctx.anchor - timedelta(days=rng.randint(1, 30)))
    description = f"Follow-up of {condition.definition.term.display.lower()} with {clinician.name}"
    resource = _appointment(
        ctx, "booked", clinician, followup_type, start, end, booked, condition, description
    )
    ctx.add(new_urn(rng), resource)
