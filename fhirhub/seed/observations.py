"""Vital signs and laboratory Observations for a visit.

Each patient gets a personal baseline per measurement (drawn from the condition's range when a
chronic condition shifts it, e.g. hypertension -> systolic 138-162), and every visit jitters
around it; the acute illness behind a visit overrides values for that visit only (fever with
pneumonia). So the same patient looks consistent across visits and diagnoses show in the data.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import datetime, timedelta

from fhirhub.seed.context import PatientContext, Visit
from fhirhub.seed.elements import (
    LABORATORY_CATEGORY,
    VITAL_SIGNS_CATEGORY,
    Json,
    fmt_datetime,
    new_urn,
    quantity,
    rounded,
    tho,
)
from fhirhub.seed.models import LabTest, Range, VitalSign

HIGH = tho("v3-ObservationInterpretation", "H", "High")
LOW = tho("v3-ObservationInterpretation", "L", "Low")
BODY_KEYS = ("height", "weight", "bmi")


def _baseline(ctx: PatientContext, key: str, usual: Range, child: bool = False) -> float:
    value = ctx.baselines.get(key)
    if value is None:
        low, high = usual
        for condition in ctx.chronic:
            effect = condition.definition.vital_effects.get(
                key
            ) or condition.definition.lab_effects.get(key)
            if effect is not None:
                # Adult BMI cut-offs do not fit children: put them above the child range.
                low, high = (usual[1] + 1, usual[1] + 6) if key == "bmi" and child else effect
        value = ctx.rng.uniform(low, high)
        ctx.baselines[key] = value
    return value


def _acute_effects(visit: Visit) -> tuple[dict[str, Range], dict[str, Range]]:
    condition = visit.condition
    if condition is None or condition.definition.chronic:
        return {}, {}
    return condition.definition.vital_effects, condition.definition.lab_effects


def _child_height(table: tuple[tuple[int, float], ...], age: float) -> float:
    ages = [a for a, _ in table]
    i = min(max(bisect_right(ages, age), 1), len(table) - 1)
    (a0, h0), (a1, h1) = table[i - 1], table[i]
    return h0 + (h1 - h0) * (min(max(age, a0), a1) - a0) / (a1 - a0)


def _body(ctx: PatientContext, visit: Visit) -> dict[str, float | int]:
    """Height, weight and BMI that agree with each other after rounding."""
    vocab, rng = ctx.vocab, ctx.rng
    age = (visit.start.date() - ctx.birth_date).days / 365.2425
    z = ctx.baselines.get("height_z")
    if z is None:
        z = ctx.baselines["height_z"] = max(-2.5, min(2.5, rng.gauss(0.0, 1.0)))
    if age >= 18:
        mean, sd = vocab.adult_height[ctx.sex]
        height = mean + z * sd
    else:
        height = _child_height(vocab.child_height[ctx.sex], age) * (1 + 0.04 * z)
    bmi_sign = vocab.vitals["bmi"]
    child = ctx.age < 18
    bmi = _baseline(ctx, "bmi", bmi_sign.ranges["child" if child else "adult"], child)
    bmi += rng.uniform(-bmi_sign.jitter, bmi_sign.jitter)
    height = round(height, 1)
    weight = round(bmi * (height / 100) ** 2, 1)
    return {"height": height, "weight": weight, "bmi": round(weight / (height / 100) ** 2, 1)}


def _vital_value(
    ctx: PatientContext, sign: VitalSign, child: bool, acute: dict[str, Range]
) -> float:
    rng = ctx.rng
    if sign.key in acute:
        value = rng.uniform(*acute[sign.key])
    else:
        usual = sign.ranges["child" if child else "adult"]
        value = _baseline(ctx, sign.key, usual) + rng.uniform(-sign.jitter, sign.jitter)
    if sign.ceiling is not None:
        value = min(value, sign.ceiling)
    return value


def _observation(
    ctx: PatientContext, visit: Visit, category: Json, code: Json, moment: datetime
) -> Json:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [category],
        "code": code,
        "subject": ctx.subject(),
        "encounter": visit.as_ref(),
        "effectiveDateTime": fmt_datetime(moment),
    }


def add_vital_signs(ctx: PatientContext, visit: Visit) -> None:
    rng, vocab = ctx.rng, ctx.vocab
    child = ctx.age_on(visit.start.date()) < 18
    acute, _ = _acute_effects(visit)
    moment = visit.start + timedelta(minutes=rng.randint(3, 10))
    issued = fmt_datetime(moment + timedelta(minutes=rng.randint(1, 4)))
    body = _body(ctx, visit) if any(k in visit.kind.vitals for k in BODY_KEYS) else {}
    for key in visit.kind.vitals:
        sign = vocab.vitals[key]
        code: Json = {
            "coding": [sign.term.coding(), *(t.coding() for t in sign.extra_codings)],
            "text": sign.term.display,
        }
        resource = _observation(ctx, visit, VITAL_SIGNS_CATEGORY.concept(), code, moment)
        if sign.profile:
            resource = {
                "resourceType": "Observation",
                "meta": {"profile": [sign.profile]},
                **resource,
            }
        resource["issued"] = issued
        resource["performer"] = [visit.clinician.practitioner_ref()]
        if sign.components:
            components = []
            for part in sign.components:
                value = rounded(_vital_value(ctx, part, child, acute), part.decimals)
                component: Json = {
                    "code": part.term.concept(),
                    "valueQuantity": quantity(value, part.unit_display, part.unit),
                }
                if part.high is not None and value >= part.high:
                    component["interpretation"] = [HIGH.concept()]
                components.append(component)
            resource["component"] = components
        else:
            if key in body:
                value = body[key]
            else:
                value = rounded(_vital_value(ctx, sign, child, acute), sign.decimals)
            resource["valueQuantity"] = quantity(value, sign.unit_display, sign.unit)
        ctx.add(new_urn(rng), resource)


def _lab_codes(ctx: PatientContext, visit: Visit) -> list[str]:
    vocab, kind = ctx.vocab, visit.kind
    age = ctx.age_on(visit.start.date())
    codes: list[str] = []
    if age >= 12 or kind.act_class.code != "AMB":
        for group in kind.lab_groups:
            codes += vocab.lab_groups[group]
    if kind.key == "checkup":
        if age >= 35:
            codes += vocab.lab_groups["lipid"]
        for condition in ctx.chronic:
            codes += condition.definition.labs
    elif visit.condition is not None:
        definition = visit.condition.definition
        codes += definition.labs
        if not definition.chronic:
            codes += list(definition.lab_effects)
    return list(dict.fromkeys(codes))


def _lab_value(ctx: PatientContext, test: LabTest, acute: dict[str, Range]) -> float:
    code = test.term.code
    if code in acute:
        return ctx.rng.uniform(*acute[code])
    return _baseline(ctx, code, test.typical[ctx.sex]) * (1 + ctx.rng.uniform(-0.05, 0.05))


def add_labs(ctx: PatientContext, visit: Visit) -> None:
    codes = _lab_codes(ctx, visit)
    if not codes:
        return
    rng = ctx.rng
    _, acute = _acute_effects(visit)
    minutes = int((visit.end - visit.start).total_seconds() // 60)
    # Mid-visit for office and ER visits; within the first six hours of an admission.
    latest = min(minutes * 2 // 3, 360)
    drawn = visit.start + timedelta(minutes=rng.randint(min(minutes // 3, latest // 2), latest))
    issued = fmt_datetime(drawn + timedelta(minutes=rng.randint(45, 240)))
    lab = ctx.directory.hospital.org_ref()
    for code in codes:
        test = ctx.vocab.labs[code]
        value = rounded(max(_lab_value(ctx, test, acute), 0.0), test.decimals)
        resource = _observation(
            ctx, visit, LABORATORY_CATEGORY.concept(), test.term.concept(), drawn
        )
        resource["issued"] = issued
        resource["performer"] = [dict(lab)]
        resource["valueQuantity"] = quantity(value, test.unit_display, test.unit)
        low, high = test.reference[ctx.sex]
        if high is not None and value > high:
            resource["interpretation"] = [HIGH.concept()]
        elif low is not None and value < low:
            resource["interpretation"] = [LOW.concept()]
        reference: Json = {}
        if low is not None:
            reference["low"] = quantity(low, test.unit_display, test.unit)
        if high is not None:
            reference["high"] = quantity(high, test.unit_display, test.unit)
        resource["referenceRange"] = [reference]
        ctx.add(new_urn(rng), resource)
