"""Scores written as RiskAssessments by the worker: NEWS2 from the latest vitals (a medium
band opens an alert), Morse from a completed QuestionnaireResponse (high: a fall-prevention
Task), LACE when an inpatient Encounter finishes (>= 10: two follow-up Tasks)."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from fhirhub.config import Settings
from fhirhub.hub import Hub
from fhirhub.monitoring.risk.model import total_of
from fhirhub.monitoring.risk.reactions import MORSE_URL
from fhirhub.monitoring.wiring import install_knowledge
from fhirhub.worker.runner import NotificationWorker
from tests.helpers import body, create
from tests.monitoring_support import ago, enrol, vital, wait_alert
from tests.test_notifications_support import notification_settings, wait_for

ICD10 = "http://hl7.org/fhir/sid/icd-10"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return notification_settings(settings)


def assessments(client: FlaskClient, patient: str) -> list[dict[str, Any]]:
    bundle = body(client.get(f"/fhir/RiskAssessment?subject={patient}"))
    return [e["resource"] for e in bundle.get("entry") or []]


def method(assessment: dict[str, Any]) -> str:
    return str(assessment["method"]["coding"][0]["code"])


def tasks(client: FlaskClient, patient: str) -> list[dict[str, Any]]:
    bundle = body(client.get(f"/fhir/Task?patient={patient}"))
    return [e["resource"] for e in bundle.get("entry") or []]


def new_patient(client: FlaskClient) -> str:
    return f"Patient/{body(create(client, {'resourceType': 'Patient'}))['id']}"


def test_news2_from_latest_vitals_and_a_medium_band_alert(
    client: FlaskClient, hub: Hub, worker: NotificationWorker
) -> None:
    patient = new_patient(client)
    enrol(client, patient, ["9279-1", "59408-5", "8480-6", "8867-4", "8310-5"])
    # RR 23 (2) + SpO2 95 (1) + SBP 105 (1) + HR 95 (1) + 38.4 C (1) = 6: medium.
    for code, value, unit in (
        ("9279-1", 23, "/min"),
        ("59408-5", 95, "%"),
        ("8480-6", 105, "mm[Hg]"),
        ("8867-4", 95, "/min"),
        ("8310-5", 101.1, "[degF]"),  # 38.39 C
    ):
        create(client, vital(patient, code, value, unit, ago(minutes=10)))

    def news() -> list[dict[str, Any]]:
        return [a for a in assessments(client, patient) if method(a) == "news2"]

    found = wait_for(news, 20, "a NEWS2 RiskAssessment")
    assert total_of(found[-1]) == 6
    assert found[-1]["prediction"][0]["qualitativeRisk"]["text"] == "medium"
    assert len(found[-1]["basis"]) == 5
    flag = wait_alert(client, patient, "news2-medium")
    assert flag["code"]["coding"][0]["code"] == "news2-medium"


def morse_response(patient: str, **answers: str) -> dict[str, Any]:
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": MORSE_URL,
        "status": "completed",
        "subject": {"reference": patient},
        "authored": ago(minutes=1),
        "item": [
            {"linkId": k, "answer": [{"valueCoding": {"code": v}}]} for k, v in answers.items()
        ],
    }


def test_morse_high_risk_writes_an_assessment_and_a_fall_prevention_task(
    client: FlaskClient, hub: Hub, worker: NotificationWorker
) -> None:
    install_knowledge(hub)
    questionnaire = body(client.get("/fhir/Questionnaire/morse-fall-scale"))
    assert questionnaire["url"] == MORSE_URL and len(questionnaire["item"]) == 6
    patient = new_patient(client)
    # 25 + 15 + 15 + 0 + 20 + 0 = 75: high
    create(
        client,
        morse_response(
            patient,
            **{
                "history-of-falling": "yes",
                "secondary-diagnosis": "yes",
                "ambulatory-aid": "crutches-cane-walker",
                "iv-or-heparin-lock": "no",
                "gait": "impaired",
                "mental-status": "oriented",
            },
        ),
    )
    found = wait_for(lambda: assessments(client, patient), 20, "the Morse RiskAssessment")
    assert method(found[0]) == "morse" and total_of(found[0]) == 75
    task = wait_for(lambda: tasks(client, patient), 10, "the fall-prevention Task")[0]
    assert "Fall-prevention" in task["description"]
    assert task["focus"]["reference"] == f"RiskAssessment/{found[0]['id']}"


def test_lace_at_discharge_with_follow_up_tasks(
    client: FlaskClient, hub: Hub, worker: NotificationWorker
) -> None:
    patient = new_patient(client)
    for code in ("I50.9", "E11.9"):  # heart failure 2 + diabetes 1: Charlson 3 (3 points)
        create(
            client,
            {
                "resourceType": "Condition",
                "subject": {"reference": patient},
                "code": {"coding": [{"system": ICD10, "code": code}]},
            },
        )
    for months in (2, 4):  # two ED visits in 6 months (2 points)
        create(
            client,
            {
                "resourceType": "Encounter",
                "status": "finished",
                "class": {"code": "EMER"},
                "subject": {"reference": patient},
                "period": {"start": ago(days=30 * months), "end": ago(days=30 * months - 0.2)},
            },
        )
    stay = {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"code": "IMP"},
        "priority": {"coding": [{"code": "EM"}]},  # acute: 3 points
        "subject": {"reference": patient},
        "period": {"start": ago(days=6), "end": ago(days=1)},  # 5 days: 4 points
    }
    encounter = body(create(client, stay))
    found = wait_for(lambda: assessments(client, patient), 20, "the LACE RiskAssessment")
    assert method(found[0]) == "lace" and total_of(found[0]) == 12
    assert found[0]["encounter"]["reference"] == f"Encounter/{encounter['id']}"
    follow_ups = wait_for(lambda: len(tasks(client, patient)) == 2 and tasks(client, patient), 10)
    texts = sorted(t["description"] for t in follow_ups)
    assert texts[0].startswith("Follow-up appointment within 7 days")
    assert texts[1].startswith("Follow-up call within 48 hours")
