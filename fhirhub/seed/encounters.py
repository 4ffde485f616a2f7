"""Past visits: when they happened, who saw the patient, and the Encounter (plus, for scheduled
ambulatory visits, the fulfilled Appointment) that records each one."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from fhirhub.seed import appointments, observations
from fhirhub.seed.context import PatientContext, Visit
from fhirhub.seed.elements import (
    ATTENDER,
    PRIMARY_PERFORMER,
    VISIT_SYSTEM,
    VN_TYPE,
    Json,
    fmt_datetime,
    identifier,
    new_urn,
    tho,
)
from fhirhub.seed.models import Clinician, EncounterKind, Site

MIN_VISITS, MAX_VISITS = 2, 6
MIN_CHECKUP_GAP_DAYS = 300
DIAGNOSIS_ROLES = {
    "AMB": tho("diagnosis-role", "CC", "Chief complaint"),
    "EMER": tho("diagnosis-role", "CC", "Chief complaint"),
    "IMP": tho("diagnosis-role", "AD", "Admission diagnosis"),
}
ADMIT_FROM_ER = tho("admit-source", "emd", "From accident/emergency department")
DISCHARGED_HOME = tho("discharge-disposition", "home", "Home")


def weekday_on_or_before(day: date) -> date:
    return day - timedelta(days=max(0, day.weekday() - 4))


def office_slot(ctx: PatientContext, day: date) -> datetime:
    """A quarter-hour slot between 08:00 and 16:15."""
    return datetime.combine(day, time(8)) + timedelta(minutes=15 * ctx.rng.randrange(34))


def plan_visits(ctx: PatientContext) -> None:
    """Spread 2-6 visits over the history window, ending before the anchor date.
    At least one is a check-up so every patient has a fulfilled Appointment."""
    rng, vocab = ctx.rng, ctx.vocab
    kinds = [
        k
        for k in vocab.encounter_kinds.values()
        if ctx.age >= k.min_age and (k.key != "followup" or ctx.chronic)
    ]
    count = rng.randint(MIN_VISITS, MAX_VISITS)
    lived = (ctx.anchor - ctx.birth_date).days - 1
    horizon = max(count + 2, min(vocab.history_days, lived))
    days_ago = sorted(rng.sample(range(2, horizon + 1), count), reverse=True)
    chosen = rng.choices(kinds, [k.weight for k in kinds], k=count)
    if not any(k.key == "checkup" for k in chosen):
        chosen[rng.randrange(count)] = vocab.encounter_kinds["checkup"]
    # Check-ups are annual: a second one within ~10 months becomes another kind of visit.
    fallback = vocab.encounter_kinds["followup" if ctx.chronic else "problem"]
    last_checkup: int | None = None
    for i, (ago, kind) in enumerate(zip(days_ago, chosen, strict=True)):
        if kind.key != "checkup":
            continue
        if last_checkup is not None and last_checkup - ago < MIN_CHECKUP_GAP_DAYS:
            chosen[i] = fallback
        else:
            last_checkup = ago
    for ago, kind in zip(days_ago, chosen, strict=True):
        ctx.visits.append(_plan_visit(ctx, kind, ctx.anchor - timedelta(days=ago), ago))
    # Weekend office visits move back to Friday, which can reorder neighbours.
    ctx.visits.sort(key=lambda v: v.start)
    for number, visit in enumerate(ctx.visits, start=1):
        visit.number = number


def _plan_visit(ctx: PatientContext, kind: EncounterKind, day: date, ago: int) -> Visit:
    rng, directory = ctx.rng, ctx.directory
    condition = None
    clinician: Clinician = ctx.gp
    site: Site = ctx.gp.site
    if kind.key == "followup":
        condition = rng.choice(ctx.chronic)
        clinician = condition.clinician
        site = clinician.site
    elif kind.key == "problem" and rng.random() < 0.25:
        # The patient's own physician was busy; a colleague at the same practice saw them.
        colleagues = [c for c in directory.primary_care(ctx.age < 18) if c.site == ctx.gp.site]
        clinician = rng.choice(colleagues) if colleagues else ctx.gp
    elif kind.act_class.code in ("EMER", "IMP"):
        pool = directory.by_specialty.get(
            "emergency" if kind.act_class.code == "EMER" else "internal"
        )
        clinician = rng.choice(pool) if pool else ctx.gp
        site = directory.hospital
    if kind.act_class.code == "AMB":
        wanted = office_slot(ctx, weekday_on_or_before(day))
        assert kind.minutes is not None
        minutes = 5 * (rng.randint(*kind.minutes) // 5)
        # Earlier if that time is taken: a past visit must stay before the anchor date.
        start = ctx.run.calendar.place(wanted, minutes, [clinician.npi, ctx.urn], -1)
        end = start + timedelta(minutes=minutes)
    elif kind.days is not None:
        start = datetime.combine(day, time(rng.randrange(24), rng.randrange(0, 60, 5)))
        stay = min(rng.randint(*kind.days), ago - 1)
        end = datetime.combine(
            day + timedelta(days=stay), time(rng.randint(10, 14), rng.randrange(0, 60, 15))
        )
    else:
        assert kind.minutes is not None
        start = datetime.combine(day, time(rng.randrange(24), rng.randrange(0, 60, 5)))
        end = start + timedelta(minutes=rng.randint(*kind.minutes))
    visit = Visit(kind, new_urn(ctx.rng), 0, start, end, clinician, site, condition=condition)
    if kind.appointment_type is not None:
        visit.appointment_urn = new_urn(ctx.rng)
    return visit


def add_visits(ctx: PatientContext) -> None:
    for visit in ctx.visits:
        ctx.add(visit.urn, _encounter(ctx, visit))
        if visit.appointment_urn is not None:
            appointments.add_past_appointment(ctx, visit)
        observations.add_vital_signs(ctx, visit)
        observations.add_labs(ctx, visit)


def _encounter(ctx: PatientContext, visit: Visit) -> Json:
    kind, clinician = visit.kind, visit.clinician
    period = {"start": fmt_datetime(visit.start), "end": fmt_datetime(visit.end)}
    participant_type = PRIMARY_PERFORMER if kind.act_class.code == "AMB" else ATTENDER
    encounter: Json = {
        "resourceType": "Encounter",
        "identifier": [
            identifier(VISIT_SYSTEM, f"{ctx.mrn}-{visit.number:02d}", VN_TYPE, use="usual")
        ],
        "status": "finished",
        "class": kind.act_class.coding(),
        "type": [kind.type.concept()],
        "serviceType": clinician.specialty.service.concept(),
        "subject": ctx.subject(),
        "participant": [
            {
                "type": [participant_type.concept()],
                "period": dict(period),
                "individual": clinician.practitioner_ref(),
            }
        ],
    }
    if visit.appointment_urn is not None:
        encounter["appointment"] = [{"reference": visit.appointment_urn}]
    encounter["period"] = period
    condition = visit.condition
    if condition is not None:
        encounter["reasonReference"] = [condition.as_ref()]
        if not condition.definition.chronic:
            encounter["diagnosis"] = [
                {
                    "condition": condition.as_ref(),
                    "use": DIAGNOSIS_ROLES[kind.act_class.code].concept(),
                    "rank": 1,
                }
            ]
    if kind.act_class.code == "IMP":
        encounter["hospitalization"] = {
            "admitSource": ADMIT_FROM_ER.concept(),
            "dischargeDisposition": DISCHARGED_HOME.concept(),
        }
    encounter["location"] = [
        {"location": visit.site.location_ref(), "status": "completed", "period": dict(period)}
    ]
    encounter["serviceProvider"] = visit.site.org_ref()
    return encounter
