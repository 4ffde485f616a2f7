"""Readings through the API open one alert per rule (Flag + Task) in the worker, update it
while it is open, close it when the Task is completed, and reach the care team's endpoint."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from fhirhub.config import Settings
from fhirhub.hub import Hub
from fhirhub.worker.runner import NotificationWorker
from tests.helpers import body, create
from tests.monitoring_support import ago, alert_count, alerts, enrol, vital, wait_alert
from tests.test_notifications_support import (
    Receiver,
    care_team,
    notification_settings,
    outbox_drained,
    wait_for,
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return notification_settings(settings)


def test_heart_rate_alert_opens_once_updates_and_closes(
    client: FlaskClient, hub: Hub, receiver: Receiver, worker: NotificationWorker
) -> None:
    setup = care_team(client, receiver.url)
    patient = setup.patient
    enrol(client, patient, ["8867-4"])
    first = body(create(client, vital(patient, "8867-4", 131, "/min", ago(minutes=10))))
    flag = wait_alert(client, patient, "heart-rate-high")
    assert alert_count(flag) == 1
    tasks = wait_for(lambda: alerts(client, patient, "heart-rate-high", "Task"), 10, "Task")
    assert len(tasks) == 1
    task = tasks[0]
    assert task["status"] == "requested" and task["priority"] == "urgent"
    assert task["focus"]["reference"] == f"Observation/{first['id']}"
    assert task["reasonReference"]["reference"] == f"Flag/{flag['id']}"
    assert task["owner"]["reference"].startswith("CareTeam/")
    # The care team's endpoint hears about the Flag and the Task.
    wait_for(lambda: f"Flag/{flag['id']}/_history/1" in receiver.focus(), 10, "Flag delivery")
    wait_for(lambda: f"Task/{task['id']}/_history/1" in receiver.focus(), 10, "Task delivery")
    # More readings that trip the rule update the open alert instead of opening another.
    second = body(create(client, vital(patient, "8867-4", 140, "/min", ago(minutes=5))))
    wait_for(
        lambda: alert_count(wait_alert(client, patient, "heart-rate-high")) == 2, 15, "count 2"
    )
    assert len(alerts(client, patient, "heart-rate-high")) == 1
    focus = f"Observation/{second['id']}"
    task = wait_for(
        lambda: next(
            (
                t
                for t in alerts(client, patient, "heart-rate-high", "Task")
                if t["focus"]["reference"] == focus
            ),
            None,
        ),
        10,
        "the Task to focus on the latest reading",
    )
    # An in-range reading for another rule's measure opens nothing; completing the Task
    # closes the alert.
    client.put(f"/fhir/Task/{task['id']}", json={**task, "status": "completed"})
    wait_alert(client, patient, "heart-rate-high", status="inactive")
    # A new out-of-range reading after closing opens a new alert.
    create(client, vital(patient, "8867-4", 150, "/min", ago(minutes=1)))
    wait_alert(client, patient, "heart-rate-high")
    assert len(alerts(client, patient, "heart-rate-high")) == 2


def test_unenrolled_patients_and_in_range_readings_open_nothing(
    client: FlaskClient, hub: Hub, worker: NotificationWorker
) -> None:
    pid = body(create(client, {"resourceType": "Patient"}))["id"]
    enrolled = body(create(client, {"resourceType": "Patient"}))["id"]
    enrol(client, f"Patient/{enrolled}", ["8867-4"])
    create(client, vital(f"Patient/{pid}", "8867-4", 180, "/min"))
    create(client, vital(f"Patient/{enrolled}", "8867-4", 80, "/min"))
    wait_for(lambda: outbox_drained(hub), 10, "outbox drained")
    wait_for(
        lambda: (
            hub.timer_store.jobs.count_documents({"kind": "reaction", "st": {"$ne": "done"}}) == 0
        ),
        15,
        "reactions done",
    )
    assert alerts(client, f"Patient/{pid}", "heart-rate-high") == []
    assert alerts(client, f"Patient/{enrolled}", "heart-rate-high") == []


def test_weights_in_pounds_in_a_transaction_out_of_order_open_the_weight_gain_alert(
    client: FlaskClient, hub: Hub, worker: NotificationWorker
) -> None:
    pid = body(create(client, {"resourceType": "Patient"}))["id"]
    patient = f"Patient/{pid}"
    enrol(client, patient, ["29463-7"])
    # Newest first: 181.0 lb (82.1 kg) today, 176.4 lb (80.0 kg) two days ago.
    entries = [
        vital(patient, "29463-7", 181.0, "[lb_av]", ago(hours=1)),
        vital(patient, "29463-7", 176.4, "[lb_av]", ago(days=2)),
    ]
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": e, "request": {"method": "POST", "url": "Observation"}} for e in entries
        ],
    }
    response = client.post("/fhir", json=bundle)
    assert response.status_code == 200, response.get_data(as_text=True)
    flag = wait_alert(client, patient, "weight-gain-3d")
    assert alert_count(flag) == 1
    # Not also the 7-day rule (+2.1 kg is not > 2.5 kg).
    assert alerts(client, patient, "weight-gain-7d") == []


def test_unknown_units_and_impossible_values_are_stored_flagged_never_alerted(
    client: FlaskClient, hub: Hub, worker: NotificationWorker
) -> None:
    pid = body(create(client, {"resourceType": "Patient"}))["id"]
    patient = f"Patient/{pid}"
    enrol(client, patient, ["59408-5", "8310-5"])
    odd = body(create(client, vital(patient, "59408-5", 80, "percent-ish")))
    impossible = body(create(client, vital(patient, "59408-5", 120, "%")))

    def issues() -> list[dict]:
        found = body(client.get(f"/fhir/DetectedIssue?patient={patient}")).get("entry") or []
        return [e["resource"] for e in found]

    wait_for(lambda: len(issues()) == 2, 15, "two flagged readings")
    implicated = {i["implicated"][0]["reference"]: i["detail"] for i in issues()}
    assert "unknown unit" in implicated[f"Observation/{odd['id']}"]
    assert "impossible" in implicated[f"Observation/{impossible['id']}"]
    # 39.4 °C from 103 °F is compared (no temperature rule fires by default) and 80 % SpO2
    # in an unknown unit never opened the SpO2 alert.
    create(client, vital(patient, "8310-5", 103, "[degF]"))
    wait_for(lambda: outbox_drained(hub), 10, "outbox drained")
    wait_for(
        lambda: hub.timer_store.jobs.count_documents({"kind": "reaction", "st": "pending"}) == 0,
        15,
        "reactions done",
    )
    assert alerts(client, patient, "spo2-low") == []
    assert len(issues()) == 2


def test_a_duplicate_reading_opens_no_second_alert_and_counts_once(
    client: FlaskClient, hub: Hub, worker: NotificationWorker
) -> None:
    pid = body(create(client, {"resourceType": "Patient"}))["id"]
    patient = f"Patient/{pid}"
    enrol(client, patient, ["59408-5"])
    device = body(create(client, {"resourceType": "Device", "patient": {"reference": patient}}))
    when = ago(minutes=2)
    reading = vital(
        patient, "59408-5", 86, "%", when, device={"reference": f"Device/{device['id']}"}
    )
    create(client, reading)
    create(client, reading)  # the gateway sent it twice (no If-None-Exist)
    wait_alert(client, patient, "spo2-low")
    wait_for(
        lambda: hub.timer_store.jobs.count_documents({"kind": "reaction", "st": "pending"}) == 0,
        15,
        "reactions done",
    )
    flags = alerts(client, patient, "spo2-low")
    assert len(flags) == 1 and alert_count(flags[0]) == 1
    assert len(wait_for(lambda: alerts(client, patient, "spo2-low", "Task"), 10, "Task")) == 1
