"""Care-team notifications end to end: REST write -> outbox -> worker -> loopback receiver."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from fhirhub.config import Settings
from fhirhub.hub import Hub
from fhirhub.worker.runner import NotificationWorker
from tests.helpers import FHIR_JSON, body, create
from tests.test_notifications_support import (
    SECRET,
    SIGNING,
    Receiver,
    care_team,
    notification_settings,
    observation,
    outbox_drained,
    put,
    team_resource,
    wait_for,
)

EVENT = "https://fhirhub.example/fhir/StructureDefinition/notification-event"
PATIENT = "https://fhirhub.example/fhir/StructureDefinition/notification-patient"
CONTENT = "https://fhirhub.example/fhir/StructureDefinition/notification-content"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared fresh-database settings, with fast notification timings."""
    return notification_settings(settings, notify_max_attempts=100)  # no dead letters here


def delivery(hub: Hub, key: str) -> dict[str, object]:
    found: dict[str, object] = hub.db["deliveries"].find_one({"_id": key}) or {}
    return found


def most_attempts(hub: Hub, endpoint: str) -> int:
    """Attempts of the queue's head (whichever event that is: routing happens at dispatch,
    so the Patient's own creation may or may not be queued before the CareTeam's)."""
    return max((d["n"] for d in hub.db["deliveries"].find({"sub": endpoint})), default=0)


def test_observation_reaches_care_team_signed(
    client: FlaskClient, hub: Hub, receiver: Receiver, worker: NotificationWorker
) -> None:
    setup = care_team(client, receiver.url)
    obs = body(create(client, observation(setup.patient)))
    wanted = f"Observation/{obs['id']}/_history/1"
    wait_for(lambda: wanted in receiver.focus(), what="the Observation notification")
    request = receiver.requests[receiver.focus().index(wanted)]
    assert request.signature_ok
    assert request.headers["content-type"].startswith("application/fhir+json")
    bundle = request.json()
    assert bundle["type"] == "history"
    assert request.headers["x-fhirhub-event-id"] == bundle["id"]
    entry = bundle["entry"][0]
    assert entry["resource"]["id"] == obs["id"]
    assert entry["request"] == {"method": "POST", "url": "Observation"}
    extensions = {e["url"]: e for e in entry["extension"]}
    assert extensions[EVENT]["valueCode"] == "create"
    assert extensions[PATIENT]["valueReference"]["reference"] == setup.patient
    status = body(client.get(f"/fhir/{setup.endpoint}/$status"))
    parts = {p["name"]: p for p in status["parameter"]}
    assert parts["delivered"]["valueInteger"] >= 1


def test_update_and_delete_are_notified_in_order(
    client: FlaskClient, receiver: Receiver, worker: NotificationWorker
) -> None:
    setup = care_team(client, receiver.url)
    obs = body(create(client, observation(setup.patient)))
    put(client, {**obs, "status": "amended"})
    assert client.delete(f"/fhir/Observation/{obs['id']}").status_code == 204
    ref = f"Observation/{obs['id']}"
    expected = [f"{ref}/_history/{v}" for v in (1, 2, 3)]
    wait_for(lambda: [f for f in receiver.focus() if f.startswith(ref)] == expected)
    events = [
        r.headers["x-fhirhub-event"]
        for r in receiver.requests
        if ref in r.headers["x-fhirhub-resource"]
    ]
    assert events == ["create", "update", "delete"]
    deleted = receiver.bundles()[-1]["entry"][0]
    assert "resource" not in deleted and deleted["request"] == {"method": "DELETE", "url": ref}


def test_id_only_and_resource_type_filter(
    client: FlaskClient, hub: Hub, receiver: Receiver, worker: NotificationWorker
) -> None:
    types = {"system": "http://hl7.org/fhir/resource-types", "code": "Observation"}
    setup = care_team(
        client,
        receiver.url,
        payloadType=[{"coding": [types]}],
        extension=[
            {"url": CONTENT, "valueCode": "id-only"},
            {"url": SIGNING, "valueString": SECRET},
        ],
    )
    condition = {
        "resourceType": "Condition",
        "subject": {"reference": setup.patient},
        "code": {"text": "hypertension"},
    }
    create(client, condition)
    obs = body(create(client, observation(setup.patient)))
    wait_for(lambda: receiver.requests, what="a notification")
    wait_for(lambda: outbox_drained(hub))
    # neither the Patient, the CareTeam nor the Condition: Observations only
    assert receiver.focus() == [f"Observation/{obs['id']}/_history/1"]
    entry = receiver.bundles()[0]["entry"][0]
    assert "resource" not in entry
    assert entry["fullUrl"].endswith(f"/Observation/{obs['id']}")


def test_opted_out_endpoint_gets_nothing(
    client: FlaskClient, hub: Hub, receiver: Receiver, worker: NotificationWorker
) -> None:
    none = {"system": "http://terminology.hl7.org/CodeSystem/endpoint-payload-type", "code": "none"}
    setup = care_team(client, receiver.url, payloadType=[{"coding": [none]}])
    create(client, observation(setup.patient))
    wait_for(lambda: outbox_drained(hub))
    assert hub.db["deliveries"].count_documents({"sub": setup.endpoint}) == 0
    assert receiver.requests == []


def test_removed_participant_gets_no_more_notifications(
    client: FlaskClient, hub: Hub, receiver: Receiver, worker: NotificationWorker
) -> None:
    setup = care_team(client, receiver.url)
    first = body(create(client, observation(setup.patient)))
    wait_for(lambda: f"Observation/{first['id']}/_history/1" in receiver.focus())
    patient_id = setup.patient.split("/")[1]
    other = body(create(client, {"resourceType": "PractitionerRole", "active": True}))
    team = team_resource(patient_id, [f"PractitionerRole/{other['id']}"])
    put(client, {**team, "id": setup.team})
    second = body(create(client, observation(setup.patient, 80)))
    wait_for(lambda: outbox_drained(hub))
    wait_for(lambda: hub.db["deliveries"].count_documents({"st": "pending"}) == 0)
    assert not any(second["id"] in f for f in receiver.focus())
    assert hub.db["deliveries"].count_documents({"ev": f"Observation/{second['id']}/1"}) == 0


def test_membership_is_checked_again_at_delivery(
    client: FlaskClient, hub: Hub, receiver: Receiver, worker: NotificationWorker
) -> None:
    receiver.stop()  # queued notifications wait while the receiver is down
    setup = care_team(client, receiver.url)
    obs = body(create(client, observation(setup.patient)))
    key = f"{setup.endpoint}|Observation/{obs['id']}/1"
    wait_for(lambda: most_attempts(hub, setup.endpoint) >= 1, what="the queue to be retrying")
    assert delivery(hub, key)["st"] == "pending"
    patient_id = setup.patient.split("/")[1]
    put(client, {**team_resource(patient_id, []), "id": setup.team})
    receiver.start()
    wait_for(lambda: delivery(hub, key).get("st") != "pending")
    done = delivery(hub, key)
    assert done["st"] == "skipped" and "no longer on an active care team" in str(done["err"])
    assert not any(obs["id"] in f for f in receiver.focus())


def test_receiver_down_then_up_gets_everything_in_order(
    client: FlaskClient, hub: Hub, receiver: Receiver, worker: NotificationWorker
) -> None:
    receiver.stop()
    setup = care_team(client, receiver.url)
    ids = [body(create(client, observation(setup.patient, 60 + i)))["id"] for i in range(5)]
    wait_for(lambda: most_attempts(hub, setup.endpoint) >= 2, what="two failed attempts")
    receiver.start()
    expected = [f"Observation/{i}/_history/1" for i in ids]
    wait_for(lambda: [f for f in receiver.focus() if f.startswith("Observation/")] == expected, 15)
    assert receiver.focus()[0].startswith(("Patient/", "CareTeam/"))  # queued first, sent first
    assert all(r.signature_ok for r in receiver.requests)


def test_transaction_bundle_changes_are_notified(
    client: FlaskClient, receiver: Receiver, worker: NotificationWorker
) -> None:
    setup = care_team(client, receiver.url)
    entries = [
        {
            "resource": observation(setup.patient, v),
            "request": {"method": "POST", "url": "Observation"},
        }
        for v in (1, 2)
    ]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    response = client.post("/fhir/", json=bundle, headers=FHIR_JSON)
    assert response.status_code == 200, response.get_data(as_text=True)
    locations = [e["response"]["location"] for e in body(response)["entry"]]
    wait_for(lambda: all(loc in receiver.focus() for loc in locations))
