"""Problems and allergies: which chronic conditions a patient has, the acute illnesses behind
unplanned visits, and AllergyIntolerance records."""

from __future__ import annotations

from datetime import date, timedelta

from fhirhub.seed.context import ConditionInstance, PatientContext
from fhirhub.seed.elements import Json, fmt_datetime, new_urn, tho

HISTORY_YEARS = 15
ACUTE_SETTINGS = ("problem", "emergency", "inpatient")
CLINICAL = {
    "active": tho("condition-clinical", "active", "Active"),
    "resolved": tho("condition-clinical", "resolved", "Resolved"),
}
CONFIRMED = tho("condition-ver-status", "confirmed", "Confirmed")
PROBLEM_LIST = tho("condition-category", "problem-list-item", "Problem List Item")
ENCOUNTER_DIAGNOSIS = tho("condition-category", "encounter-diagnosis", "Encounter Diagnosis")
ALLERGY_ACTIVE = tho("allergyintolerance-clinical", "active", "Active")
ALLERGY_CONFIRMED = tho("allergyintolerance-verification", "confirmed", "Confirmed")
MAX_ALLERGIES = 4


def _years_after(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def choose_chronic(ctx: PatientContext) -> None:
    """Draw chronic conditions in table order, so earlier ones (obesity, diabetes) can raise the
    odds of later ones (hypertension, kidney disease) through the table's risk multipliers."""
    age, rng = ctx.age, ctx.rng
    present: set[str] = set()
    for definition in ctx.vocab.conditions:
        if not definition.chronic or age < definition.min_age:
            continue
        if any(code in present for code in definition.excludes):
            continue
        chance = definition.prevalence * definition.sex.get(ctx.sex, 1.0)
        if definition.rising:
            chance *= 0.3 + 1.4 * min(1.0, (age - definition.min_age) / 40)
        for code, multiplier in definition.risk.items():
            if code in present:
                chance *= multiplier
        if rng.random() < min(chance, 0.9):
            present.add(definition.term.code)
            ctx.chronic.append(ConditionInstance(definition, new_urn(rng), ctx.gp))


def add_conditions(ctx: PatientContext) -> None:
    """Date the chronic problems before the first visit, attach an acute illness to every
    unplanned visit, and emit all of them as Condition resources."""
    rng, birth = ctx.rng, ctx.birth_date
    first_day = ctx.visits[0].start.date()
    for condition in ctx.chronic:
        earliest = max(
            _years_after(birth, condition.definition.min_age),
            _years_after(ctx.anchor, -HISTORY_YEARS),
        )
        latest = first_day - timedelta(days=30)
        if latest <= earliest:
            condition.onset = latest if latest > birth else birth + timedelta(days=1)
        else:
            condition.onset = earliest + timedelta(days=rng.randrange((latest - earliest).days))
    for visit in ctx.visits:
        if visit.kind.key not in ACUTE_SETTINGS:
            continue
        options = [
            d
            for d in ctx.vocab.conditions
            if not d.chronic and visit.kind.key in d.settings and ctx.age >= d.min_age
        ]
        if not options:
            continue
        weights = [d.settings[visit.kind.key] * d.sex.get(ctx.sex, 1.0) for d in options]
        definition = rng.choices(options, weights)[0]
        day = visit.start.date()
        abatement = day + timedelta(days=rng.randint(*definition.course_days))
        condition = ConditionInstance(
            definition,
            new_urn(rng),
            visit.clinician,
            onset=day - timedelta(days=rng.randint(1, 5)),
            recorded=visit.start + timedelta(minutes=10),
            abatement=abatement if abatement < ctx.anchor else None,
            visit=visit,
        )
        visit.condition = condition
        ctx.acute.append(condition)
    for condition in [*ctx.chronic, *ctx.acute]:
        ctx.add(condition.urn, _condition_resource(ctx, condition))


def _condition_resource(ctx: PatientContext, condition: ConditionInstance) -> Json:
    definition = condition.definition
    assert condition.onset is not None
    resolved = condition.abatement is not None
    resource: Json = {
        "resourceType": "Condition",
        "clinicalStatus": CLINICAL["resolved" if resolved else "active"].concept(),
        "verificationStatus": CONFIRMED.concept(),
        "category": [(PROBLEM_LIST if definition.chronic else ENCOUNTER_DIAGNOSIS).concept()],
        "code": definition.term.concept(),
        "subject": ctx.subject(),
    }
    if condition.visit is not None:
        resource["encounter"] = condition.visit.as_ref()
    resource["onsetDateTime"] = condition.onset.isoformat()
    if condition.abatement is not None:
        resource["abatementDateTime"] = condition.abatement.isoformat()
    resource["recordedDate"] = (
        fmt_datetime(condition.recorded) if condition.recorded else condition.onset.isoformat()
    )
    resource["recorder"] = condition.clinician.practitioner_ref()
    return resource


def add_allergies(ctx: PatientContext) -> None:
    rng = ctx.rng
    for allergen in ctx.vocab.allergens:
        if ctx.age >= allergen.min_age and rng.random() < allergen.prevalence:
            ctx.allergies.append(allergen)
    del ctx.allergies[MAX_ALLERGIES:]
    first_day = ctx.visits[0].start.date()
    for allergen in ctx.allergies:
        reactions = rng.sample(allergen.reactions, min(len(allergen.reactions), rng.randint(1, 2)))
        severe = any(r.code in allergen.severe for r in reactions)
        lived = max(1, (first_day - ctx.birth_date).days - 1)
        onset = ctx.birth_date + timedelta(days=rng.randint(max(1, lived // 3), lived))
        severity = "severe" if severe else "moderate" if rng.random() < 0.35 else "mild"
        resource: Json = {
            "resourceType": "AllergyIntolerance",
            "clinicalStatus": ALLERGY_ACTIVE.concept(),
            "verificationStatus": ALLERGY_CONFIRMED.concept(),
            "type": allergen.type,
            "category": [allergen.category],
            "criticality": "high" if severe else "low",
            "code": allergen.term.concept(),
            "patient": ctx.subject(),
            "onsetDateTime": onset.isoformat(),
            "recordedDate": onset.isoformat(),
            "recorder": ctx.gp.practitioner_ref(),
            "reaction": [
                {
                    "manifestation": [r.concept() for r in reactions],
                    "description": f"Reaction to {allergen.term.display}",
                    "severity": severity,
                }
            ],
        }
        ctx.add(new_urn(rng), resource)
