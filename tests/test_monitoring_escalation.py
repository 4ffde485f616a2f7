"""Alerts not accepted in time escalate to the next tier of the care team (CareTeam role
order), and close by themselves once readings stay back in range (timers in the worker)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from fhirhub.config import Settings
from fhirhub.hub import Hub
from fhirhub.worker.runner import NotificationWorker
from tests.helpers import body, create
from tests.monitoring_support import ago, alerts, enrol, vital, wait_alert
from tests.test_notifications_support import notification_settings, wait_for

SNOMED = "http://snomed.info/sct"


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    site = tmp_path / "rules.json"
    fast = {"escalate_after_min": 0.02, "resolve_after_min": 0.02}  # 1.2 s
    site.write_text(json.dumps({"rules": [{"id": "heart-rate-high", **fast}]}))
    return notification_settings(settings, monitoring_rules=str(site), timer_poll_ms=50)


def team(client: FlaskClient, patient: str) -> tuple[str, str]:
    nurse = body(create(client, {"resourceType": "PractitionerRole", "active": True}))["id"]
    doctor = body(create(client, {"resourceType": "PractitionerRole", "active": True}))["id"]

    def member(ref: str, code: str) -> dict:
        return {
            "role": [{"coding": [{"system": SNOMED, "code": code}]}],
            "member": {"reference": ref},
        }

    create(
        client,
        {
            "resourceType": "CareTeam",
            "status": "active",
            "subject": {"reference": patient},
            # Listed physician first: the tier order comes from the rules table, not here.
            "participant": [
                member(f"PractitionerRole/{doctor}", "309343006"),
                member(f"PractitionerRole/{nurse}", "224535009"),
            ],
        },
    )
    return f"PractitionerRole/{nurse}", f"PractitionerRole/{doctor}"


def test_an_unaccepted_alert_escalates_to_the_physician_and_stops_when_accepted(
    client: FlaskClient, hub: Hub, worker: NotificationWorker
) -> None:
    pid = body(create(client, {"resourceType": "Patient"}))["id"]
    patient = f"Patient/{pid}"
    nurse, doctor = team(client, patient)
    enrol(client, patient, ["8867-4"])
    create(client, vital(patient, "8867-4", 135, "/min"))
    wait_alert(client, patient, "heart-rate-high")
    task = wait_for(lambda: alerts(client, patient, "heart-rate-high", "Task"), 10, "Task")[0]
    assert task["owner"]["reference"] == nurse and task["priority"] == "urgent"

    def escalated() -> dict | None:
        found = alerts(client, patient, "heart-rate-high", "Task")[0]
        return found if found["owner"]["reference"] == doctor else None

    task = wait_for(escalated, 15, "escalation to the physician tier")
    assert task["priority"] == "asap"
    assert "physician tier" in task["note"][-1]["text"]
    # The physician accepts: no further escalation (there is no third tier member anyway).
    response = client.put(f"/fhir/Task/{task['id']}", json={**task, "status": "accepted"})
    assert response.status_code == 200
    wait_for(
        lambda: (
            hub.timer_store.jobs.count_documents({"kind": "monitoring-escalate", "st": "pending"})
            == 0
        ),
        15,
        "escalation jobs to finish",
    )
    assert alerts(client, patient, "heart-rate-high", "Task")[0]["priority"] == "asap"


def test_an_alert_closes_after_readings_stay_back_in_range(
    client: FlaskClient, hub: Hub, worker: NotificationWorker
) -> None:
    pid = body(create(client, {"resourceType": "Patient"}))["id"]
    patient = f"Patient/{pid}"
    enrol(client, patient, ["8867-4"])
    create(client, vital(patient, "8867-4", 135, "/min", ago(minutes=3)))
    wait_alert(client, patient, "heart-rate-high")
    create(client, vital(patient, "8867-4", 82, "/min", ago(minutes=1)))
    flag = wait_alert(client, patient, "heart-rate-high", status="inactive")
    assert "end" in flag["period"]
    task = wait_for(
        lambda: next(
            (
                t
                for t in alerts(client, patient, "heart-rate-high", "Task")
                if t["status"] == "cancelled"
            ),
            None,
        ),
        10,
        "the Task to be cancelled",
    )
    assert task["statusReason"]["text"] == "readings back in range"
