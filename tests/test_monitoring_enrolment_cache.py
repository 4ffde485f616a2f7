"""The worker keeps enrolments between readings: a CarePlan, Goal or Device change committed
before a reading is seen by that reading's rules (the dispatcher replaces the patient's
change token before it plans the reading's reaction)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from flask.testing import FlaskClient

from fhirhub.config import Settings
from fhirhub.hub import Hub
from fhirhub.importer.runner import Importer
from fhirhub.monitoring.enrolment.cache import NAMESPACE
from fhirhub.service.bundles import BundleService
from fhirhub.storage.generations import GenerationStore
from fhirhub.worker.runner import NotificationWorker
from tests.helpers import body, create
from tests.monitoring_support import (
    LOINC,
    ago,
    alert_count,
    alerts,
    care_plan,
    vital,
    wait_alert,
)
from tests.test_notifications_support import notification_settings, outbox_drained, wait_for


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return notification_settings(settings)


def settled(hub: Hub) -> None:
    wait_for(lambda: outbox_drained(hub), 15, "outbox drained")
    wait_for(
        lambda: (
            hub.timer_store.jobs.count_documents({"kind": "reaction", "st": {"$ne": "done"}}) == 0
        ),
        20,
        "reactions done",
    )


def goal(patient: str, high: float) -> dict[str, object]:
    return {
        "resourceType": "Goal",
        "lifecycleStatus": "active",
        "description": {"text": "heart rate"},
        "subject": {"reference": patient},
        "target": [
            {
                "measure": {"coding": [{"system": LOINC, "code": "8867-4"}]},
                "detailRange": {"high": {"value": high, "unit": "/min"}},
            }
        ],
    }


def test_plan_and_goal_changes_reach_the_next_reading(
    client: FlaskClient, hub: Hub, worker: NotificationWorker
) -> None:
    patient = f"Patient/{body(create(client, {'resourceType': 'Patient'}))['id']}"
    # Not monitored yet: the worker remembers that...
    create(client, vital(patient, "8867-4", 131, "/min", ago(minutes=20)))
    settled(hub)
    assert alerts(client, patient, "heart-rate-high") == []
    # ...until a CarePlan enrols the patient, with a Goal allowing up to 150 /min.
    target = body(create(client, goal(patient, 150)))
    plan = body(create(client, care_plan(patient, ["8867-4"], [f"Goal/{target['id']}"])))
    create(client, vital(patient, "8867-4", 140, "/min", ago(minutes=15)))
    settled(hub)
    assert alerts(client, patient, "heart-rate-high") == []
    # Lowering the Goal's bound (the Goal alone changes) applies to the next reading.
    lowered = goal(patient, 130)
    client.put(f"/fhir/Goal/{target['id']}", json={**lowered, "id": target["id"]})
    create(client, vital(patient, "8867-4", 140, "/min", ago(minutes=10)))
    wait_alert(client, patient, "heart-rate-high")
    # Ending the plan ends the monitoring: a later out-of-range reading counts nowhere.
    client.put(f"/fhir/CarePlan/{plan['id']}", json={**plan, "status": "completed"})
    flag = wait_alert(client, patient, "heart-rate-high")
    create(client, vital(patient, "8867-4", 170, "/min", ago(minutes=5)))
    settled(hub)
    after = [f for f in alerts(client, patient, "heart-rate-high") if f["status"] == "active"]
    assert [f["id"] for f in after] == [flag["id"]]
    assert after[0]["meta"]["versionId"] == flag["meta"]["versionId"]  # not counted


def test_a_plan_moved_to_another_patient_renews_both_tokens(
    client: FlaskClient, hub: Hub, worker: NotificationWorker
) -> None:
    first, second = (
        f"Patient/{body(create(client, {'resourceType': 'Patient'}))['id']}" for _ in range(2)
    )
    plan = body(create(client, care_plan(first, ["8867-4"])))
    settled(hub)
    tokens = GenerationStore(hub.db)
    before = {p: tokens.token(NAMESPACE + p) for p in (first, second)}
    assert before[first] is not None
    client.put(f"/fhir/CarePlan/{plan['id']}", json={**plan, "subject": {"reference": second}})
    settled(hub)
    after = {p: tokens.token(NAMESPACE + p) for p in (first, second)}
    assert after[first] != before[first] and after[second] not in (None, before[second])


def test_readings_imported_as_ndjson_after_a_device_is_assigned_alert(
    client: FlaskClient, hub: Hub, worker: NotificationWorker, tmp_path: Path
) -> None:
    """NDJSON through the importer (`fhirhub import`): a Device assigned in the file enrols
    the patient, remembered before as not monitored, for the readings after it."""
    patient = f"Patient/{body(create(client, {'resourceType': 'Patient'}))['id']}"
    create(client, vital(patient, "59408-5", 85, "%", ago(minutes=30)))
    settled(hub)
    assert alerts(client, patient, "spo2-low") == []
    lines = [
        {"resourceType": "Device", "status": "active", "patient": {"reference": patient}},
        vital(patient, "59408-5", 86, "%", ago(minutes=5)),
        vital(patient, "59408-5", 84, "percent-ish", ago(minutes=4)),
    ]
    path = tmp_path / "readings.ndjson"
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n")
    result = Importer(BundleService(hub.resources, hub.settings.fhir_base), None).import_file(path)
    assert (result.loaded, result.rejected, result.error) == (3, 0, None)
    flag = wait_alert(client, patient, "spo2-low")
    assert alert_count(flag) == 1  # the reading in an unknown unit is not compared...
    issues = wait_for(
        lambda: body(client.get(f"/fhir/DetectedIssue?patient={patient}")).get("entry"),
        15,
        "the flagged reading",
    )
    assert "unknown unit" in issues[0]["resource"]["detail"]  # ...but flagged
