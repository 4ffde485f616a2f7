"""MedicationRequests and CarePlans for the patient's conditions."""

from __future__ import annotations

from datetime import timedelta

from fhirhub.seed.context import ConditionInstance, PatientContext, Visit
from fhirhub.seed.elements import (
    UCUM,
    US_CORE_CAREPLAN_CATEGORY,
    Json,
    Term,
    fmt_datetime,
    new_urn,
    quantity,
    ref,
    tho,
)
from fhirhub.seed.models import MedicationChoice, MedicationDef

COMMUNITY = tho("medicationrequest-category", "community", "Community")
DISCHARGE = tho("medicationrequest-category", "discharge", "Discharge")
ORDERED = tho("dose-rate-type", "ordered", "Ordered")
ASSESS_PLAN = Term(US_CORE_CAREPLAN_CATEGORY, "assess-plan", "Assessment and Plan of Treatment")
CHRONIC_SUPPLY_DAYS = 90
CHRONIC_REFILLS = 3


SAFETY_OVERRIDE = "https://fhirhub.example/fhir/StructureDefinition/medication-safety-override"
SEEDED_REVIEW = "seed data: long-standing regimen, reviewed by the prescriber"


def _days(value: int) -> Json:
    return {"value": value, "unit": "days", "system": UCUM, "code": "d"}


def choose_medications(ctx: PatientContext, choice: MedicationChoice) -> list[MedicationDef]:
    """Options are filtered against the patient's allergies first, so a penicillin-allergic
    patient with strep throat gets the table's fallback (azithromycin) instead."""
    rng, meds = ctx.rng, ctx.vocab.medications
    allergic = ctx.allergy_codes()
    allowed = [
        (meds[c], p) for c, p in choice.options if not allergic.intersection(meds[c].allergens)
    ]
    if not allowed:
        return []
    if choice.pick == "one":
        weights = [p for _, p in allowed]
        if sum(weights) <= 0:
            return [allowed[0][0]]
        return [rng.choices([m for m, _ in allowed], weights)[0]]
    chosen = [m for m, p in allowed if rng.random() < p]
    return chosen or [allowed[0][0]]


def _renewal_visit(ctx: PatientContext, condition: ConditionInstance) -> Visit:
    """The latest office visit with the treating clinician; failing that, the latest check-up
    (the primary-care physician renews what a specialist started)."""
    office = [v for v in ctx.visits if v.kind.act_class.code == "AMB"]
    with_clinician = [v for v in office if v.clinician.npi == condition.clinician.npi]
    if with_clinician:
        return with_clinician[-1]
    return [v for v in office if v.kind.key == "checkup"][-1]


def _medication_request(
    ctx: PatientContext,
    med: MedicationDef,
    condition: ConditionInstance,
    visit: Visit,
    course: int | None,
) -> Json:
    authored = visit.end - timedelta(minutes=2)
    frequency, period, unit = med.repeat
    repeat: Json = {"frequency": frequency, "period": period, "periodUnit": unit}
    if course is not None:
        repeat = {"boundsDuration": _days(course), **repeat}
    dosage: Json = {
        "sequence": 1,
        "text": med.instruction(),
        "timing": {"repeat": repeat, "code": med.timing.concept()},
    }
    if med.prn:
        dosage["asNeededBoolean"] = True
    dose_value, dose_code, dose_unit = med.dose
    dosage["route"] = med.route.concept()
    dosage["doseAndRate"] = [
        {"type": ORDERED.concept(), "doseQuantity": quantity(dose_value, dose_unit, dose_code)}
    ]
    valid_days = course if course is not None else 365
    finished = course is not None and authored.date() + timedelta(days=course) < ctx.anchor
    resource: Json = {
        "resourceType": "MedicationRequest",
        "status": "completed" if finished else "active",
        "intent": "order",
        "category": [(DISCHARGE if visit.kind.act_class.code == "IMP" else COMMUNITY).concept()],
        "medicationCodeableConcept": med.term.concept(),
        "subject": ctx.subject(),
        "encounter": visit.as_ref(),
        "authoredOn": fmt_datetime(authored),
        "requester": visit.clinician.practitioner_ref(),
        "reasonReference": [condition.as_ref()],
        "dosageInstruction": [dosage],
        "dispenseRequest": {
            "validityPeriod": {
                "start": authored.date().isoformat(),
                "end": (authored.date() + timedelta(days=valid_days)).isoformat(),
            },
            "numberOfRepeatsAllowed": 0 if course is not None else CHRONIC_REFILLS,
            "expectedSupplyDuration": _days(course if course is not None else CHRONIC_SUPPLY_DAYS),
        },
    }
    if not finished:
        # Seeded chronic regimens are long-standing prescriptions: they load through the
        # medication safety checks (which now compare orders within one Bundle) as reviewed.
        resource["extension"] = [{"url": SAFETY_OVERRIDE, "valueString": SEEDED_REVIEW}]
    return resource


def add_medication_requests(ctx: PatientContext) -> None:
    prescribed: set[str] = set()
    for condition in ctx.chronic:
        choice = condition.definition.medications
        if choice is None:
            continue
        for med in choose_medications(ctx, choice):
            if med.term.code in prescribed:
                continue  # one order serves both conditions (sertraline for depression and anxiety)
            prescribed.add(med.term.code)
            visit = _renewal_visit(ctx, condition)
            ctx.add(new_urn(ctx.rng), _medication_request(ctx, med, condition, visit, None))
    for condition in ctx.acute:
        choice = condition.definition.medications
        if choice is None or condition.visit is None:
            continue
        for med in choose_medications(ctx, choice):
            course = med.course_days or condition.definition.course_days[0]
            ctx.add(
                new_urn(ctx.rng), _medication_request(ctx, med, condition, condition.visit, course)
            )


def add_care_plans(ctx: PatientContext) -> None:
    checkups = [v for v in ctx.visits if v.kind.key == "checkup"]
    visit = checkups[0]
    start = visit.start.date().isoformat()
    for condition in ctx.chronic:
        plan = condition.definition.careplan
        if plan is None:
            continue
        activities = []
        for activity in plan.activities:
            detail: Json = {
                "kind": activity.kind,
                "code": activity.term.concept(),
                "status": "in-progress",
            }
            if activity.timing is not None:
                frequency, period, unit = activity.timing
                detail["scheduledTiming"] = {
                    "repeat": {"frequency": frequency, "period": period, "periodUnit": unit}
                }
            else:
                detail["scheduledPeriod"] = {"start": start}
            detail["description"] = activity.description
            activities.append({"detail": detail})
        resource: Json = {
            "resourceType": "CarePlan",
            "status": "active",
            "intent": "plan",
            "category": [ASSESS_PLAN.concept(), plan.category.concept()],
            "title": plan.title,
            "description": f"{plan.title} addressing {condition.definition.term.display.lower()}",
            "subject": ctx.subject(),
            "period": {"start": start},
            "created": fmt_datetime(visit.end),
            "author": visit.clinician.practitioner_ref(),
            "careTeam": [ref(ctx.careteam_urn)],
            "addresses": [condition.as_ref()],
            "activity": activities,
        }
        ctx.add(new_urn(ctx.rng), resource)
