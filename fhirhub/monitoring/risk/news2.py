"""NEWS2 recomputed in the worker when a vital sign of a monitored patient arrives.

The latest of each parameter within WINDOW before the newest vital (by effective time) is
used; the score is written only when respiratory rate, SpO2, systolic pressure, heart rate
and temperature are all there. Consciousness (LOINC 80288-4, value A/C/V/P/U) is taken as
Alert and breathing as air when no reading says otherwise (documented: home monitoring).
Oxygen is on when an inhaled O2 flow (3151-8) above 0 or FiO2 (3150-0) above 21 % is given.
SpO2 scale 2 is used when the patient's SpO2 Goal's low bound is 88 % or less.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from fhirhub.monitoring.alerts.book import AlertBook
from fhirhub.monitoring.context import Context
from fhirhub.monitoring.enrolment.plans import Enrolment
from fhirhub.monitoring.readings.observations import codes_of, effective_time, readings
from fhirhub.monitoring.readings.units import BY_NAME, LOINC, PANEL_BP
from fhirhub.monitoring.risk.model import assessment_id, risk_assessment
from fhirhub.monitoring.rules.verdicts import Point, Verdict
from fhirhub.monitoring.scores import news2
from fhirhub.storage.store import fhir_instant

WINDOW = timedelta(hours=24)
NEEDED = ("respiratory-rate", "spo2", "systolic", "heart-rate", "temperature")
NEWS_MEASURES = frozenset(NEEDED)
CONSCIOUSNESS, O2_FLOW, FIO2 = "80288-4", "3151-8", "3150-0"


def _codes() -> list[str]:
    codes = [c for m in NEEDED for c in BY_NAME[m].codes] + [PANEL_BP, CONSCIOUSNESS, O2_FLOW, FIO2]
    return [f"{LOINC}|{c}" for c in codes]


def recompute(context: Context, enrolment: Enrolment, cause: str) -> str:
    patient = enrolment.patient
    query = urlencode(
        {
            "subject": patient,
            "combo-code": ",".join(_codes()),
            "date": "ge" + fhir_instant(context.clock() - WINDOW - timedelta(days=1)),
        }
    )
    found = context.search.find_resources("Observation", query, 2000)
    latest: dict[str, tuple[Any, float, str]] = {}
    for observation in found:
        for reading in readings(observation):
            when, value = reading.effective, reading.value
            if reading.measure not in NEWS_MEASURES or when is None or value is None:
                continue
            held = latest.get(reading.measure)
            if reading.usable and (held is None or when > held[0]):
                latest[reading.measure] = (when, value, reading.observation)
    if any(m not in latest for m in NEEDED):
        return ""
    newest = max(v[0] for v in latest.values())
    if any(newest - latest[m][0] > WINDOW for m in NEEDED):
        return ""
    consciousness, on_oxygen, extra = _consciousness_and_oxygen(found, newest)
    low = enrolment.bound("spo2")[0]
    vitals = news2.Vitals(
        respiratory_rate=latest["respiratory-rate"][1],
        spo2=latest["spo2"][1],
        on_oxygen=on_oxygen,
        systolic=latest["systolic"][1],
        heart_rate=latest["heart-rate"][1],
        consciousness=consciousness,
        temperature=latest["temperature"][1],
        scale2=low is not None and low <= 88,
    )
    result = news2.score(vitals)
    basis = [
        {
            "reference": latest[m][2],
            "display": f"{m} {latest[m][1]:g} {BY_NAME[m].unit}: {result.parts[m]}",
        }
        for m in NEEDED
    ] + extra
    refs = sorted(str(b["reference"]) for b in basis)
    rid = assessment_id("news2", patient, *refs)
    detail = ", ".join(f"{k} {v}" for k, v in result.parts.items())
    resource = risk_assessment(
        rid,
        "news2",
        "NEWS2",
        patient,
        newest.isoformat(),
        result.total,
        result.band,
        "Clinical deterioration",
        basis,
        detail,
    )
    context.resources.update("RiskAssessment", rid, resource)
    rule = context.knowledge.rule("news2-medium", enrolment.organization)
    if rule is not None and rule.enabled:
        point = Point(newest, float(result.total), f"RiskAssessment/{rid}")
        verdict = Verdict(
            result.band in ("medium", "high"), point, f"NEWS2 {result.total} {result.band}"
        )
        AlertBook(context).apply(patient, rule, verdict, "{score}", cause)
    return f"NEWS2 {result.total} {result.band}"


def _consciousness_and_oxygen(
    found: list[dict[str, Any]], newest: Any
) -> tuple[str, bool, list[dict[str, Any]]]:
    level: tuple[str, str | None] = ("A", None)
    oxygen: tuple[bool, str | None] = (False, None)
    level_at = oxygen_at = None
    for observation in found:
        codes = codes_of(observation.get("code"))
        when = effective_time(observation)
        if when is None or newest - when > WINDOW or when > newest:
            continue
        ref = f"Observation/{observation.get('id')}"
        if CONSCIOUSNESS in codes and (level_at is None or when > level_at):
            concept = observation.get("valueCodeableConcept") or {}
            codes_given = [str(c.get("code", "")) for c in concept.get("coding") or []]
            value = (codes_given[0] if codes_given else str(concept.get("text", "A")))[:1].upper()
            level, level_at = (value if value in "ACVPU" else "A", ref), when
        if (O2_FLOW in codes or FIO2 in codes) and (oxygen_at is None or when > oxygen_at):
            amount = (observation.get("valueQuantity") or {}).get("value", 0)
            on = bool(amount and amount > (21 if FIO2 in codes else 0))
            oxygen, oxygen_at = (on, ref), when
    extra: list[dict[str, Any]] = []
    if level[1]:
        extra.append({"reference": level[1], "display": f"consciousness {level[0]}"})
    if oxygen[1]:
        extra.append({"reference": oxygen[1], "display": "oxygen" if oxygen[0] else "air"})
    return level[0], oxygen[0], extra
