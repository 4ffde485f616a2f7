"""Morse Fall Scale from a completed QuestionnaireResponse, LACE when an inpatient
Encounter finishes: RiskAssessments and follow-up Tasks, written in the worker."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fhirhub.fhir.dates import parse_period
from fhirhub.fhir.errors import FhirError
from fhirhub.monitoring.context import Context
from fhirhub.monitoring.risk.model import assessment_id, risk_assessment
from fhirhub.monitoring.scores import lace, morse
from fhirhub.monitoring.scores.charlson_map import categories
from fhirhub.storage.store import fhir_instant
from fhirhub.subscriptions.events import ChangeEvent

MORSE_URL = "https://fhirhub.example/fhir/Questionnaire/morse-fall-scale"
ACUTE_PRIORITY = frozenset({"EM", "emergency"})
ACUTE_SOURCE = frozenset({"emd", "emergency"})
ED_LOOKBACK = timedelta(days=182)  # "in the previous 6 months"


def _task(
    task_id: str,
    patient: str,
    focus: str,
    text: str,
    owner: str | None,
    due: str | None,
    now: str,
) -> dict[str, Any]:
    task: dict[str, Any] = {
        "resourceType": "Task",
        "id": task_id,
        "status": "requested",
        "intent": "plan",
        "priority": "routine",
        "code": {"text": text},
        "description": text,
        "for": {"reference": patient},
        "focus": {"reference": focus},
        "authoredOn": now,
    }
    if owner:
        task["owner"] = {"reference": owner}
    if due:
        task["restriction"] = {"period": {"end": due}}
    return task


def on_questionnaire_response(context: Context, event: ChangeEvent) -> str | None:
    response = event.resource
    if event.deleted or response is None or response.get("status") != "completed":
        return None
    if str(response.get("questionnaire", "")).split("|")[0] != MORSE_URL:
        return None
    patient = (response.get("subject") or {}).get("reference")
    if not isinstance(patient, str) or not patient.startswith("Patient/"):
        return "Morse: no patient subject"
    answers = {
        str(item.get("linkId")): str(
            ((item.get("answer") or [{}])[0].get("valueCoding") or {}).get("code")
        )
        for item in response.get("item") or []
        if isinstance(item, dict)
    }
    try:
        result = morse.score(answers)
    except morse.MissingAnswer as missing:
        return f"Morse not scored: {missing}"
    rid = assessment_id("morse", event.key)
    ref = f"QuestionnaireResponse/{response.get('id')}"
    when = response.get("authored") or fhir_instant(context.clock())
    detail = ", ".join(f"{k} {v}" for k, v in result.parts.items())
    resource = risk_assessment(
        rid,
        "morse",
        "Morse Fall Scale",
        patient,
        when,
        result.total,
        result.risk,
        "Fall",
        [{"reference": ref}],
        detail,
    )
    context.resources.update("RiskAssessment", rid, resource)
    if result.risk == "high":
        team, _ = context.team_tiers(patient)
        text = "Fall-prevention plan (Morse Fall Scale high risk)"
        task = _task(
            assessment_id("morse-task", event.key),
            patient,
            f"RiskAssessment/{rid}",
            text,
            team,
            None,
            fhir_instant(context.clock()),
        )
        context.resources.update("Task", task["id"], task)
    return f"Morse {result.total} {result.risk}"


def on_encounter(context: Context, event: ChangeEvent) -> str | None:
    encounter = event.resource
    if event.deleted or encounter is None or encounter.get("status") != "finished":
        return None
    if (encounter.get("class") or {}).get("code") not in ("IMP", "ACUTE", "NONAC"):
        return None
    patient = (encounter.get("subject") or {}).get("reference")
    period = encounter.get("period") or {}
    if not isinstance(patient, str) or not period.get("start") or not period.get("end"):
        return "LACE: needs a patient and a period with start and end"
    try:
        start, end = parse_period(period["start"])[0], parse_period(period["end"])[0]
    except FhirError:
        return "LACE: unreadable period"
    days = max((end.date() - start.date()).days, 0)
    priority = {c.get("code") for c in (encounter.get("priority") or {}).get("coding") or []}
    source = {
        c.get("code")
        for c in ((encounter.get("hospitalization") or {}).get("admitSource") or {}).get("coding")
        or []
    }
    acute = bool(priority & ACUTE_PRIORITY or source & ACUTE_SOURCE)
    conditions = [c for c in context.find("Condition", patient=patient) if not _refuted(c)]
    visits = [
        e
        for e in context.find(
            "Encounter",
            patient=patient,
            **{"class": "EMER", "date": "ge" + fhir_instant(start - ED_LOOKBACK)},
        )
        if e.get("id") != encounter.get("id") and _starts_before(e, start)
    ]
    result = lace.score(days, acute, categories(conditions), len(visits))
    rid = assessment_id("lace", f"Encounter/{encounter.get('id')}")
    detail = (
        ", ".join(f"{k} {v}" for k, v in result.parts.items()) + f" (Charlson {result.charlson})"
    )
    band = "high" if result.high else "low"
    basis = [{"reference": f"Condition/{c['id']}"} for c in conditions][:50]
    resource = risk_assessment(
        rid,
        "lace",
        "LACE index",
        patient,
        fhir_instant(end),
        result.total,
        band,
        "Death or unplanned readmission within 30 days",
        basis,
        detail,
        encounter=f"Encounter/{encounter.get('id')}",
    )
    context.resources.update("RiskAssessment", rid, resource)
    if result.high:
        team, _ = context.team_tiers(patient)
        for key, text, after in (
            (
                "call",
                "Follow-up call within 48 hours of discharge (LACE >= 10)",
                timedelta(hours=48),
            ),
            (
                "visit",
                "Follow-up appointment within 7 days of discharge (LACE >= 10)",
                timedelta(days=7),
            ),
        ):
            task = _task(
                assessment_id("lace-task", key, str(encounter.get("id"))),
                patient,
                f"RiskAssessment/{rid}",
                text,
                team,
                fhir_instant(end + after),
                fhir_instant(context.clock()),
            )
            context.resources.update("Task", task["id"], task)
    return f"LACE {result.total}"


def _refuted(condition: dict[str, Any]) -> bool:
    verification = {
        c.get("code") for c in (condition.get("verificationStatus") or {}).get("coding") or []
    }
    return bool(verification & {"refuted", "entered-in-error"})


def _starts_before(encounter: dict[str, Any], moment: Any) -> bool:
    start = (encounter.get("period") or {}).get("start")
    try:
        return isinstance(start, str) and parse_period(start)[0] < moment
    except FhirError:
        return False
