"""Secrets of notification subscribers are write-only on every read path, and a
subscriber's activity ($status, websocket bind) is for its owner or an admin (issue 15
item 5)."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from fhirhub.config import Settings
from fhirhub.hub import Hub
from fhirhub.subscriptions.secrets import MASK
from fhirhub.worker.runner import NotificationWorker
from tests.auth_helpers import PASSWORD, clinical_data, register_app
from tests.helpers import FHIR_JSON
from tests.test_notifications_support import (
    SECRET,
    SIGNING,
    endpoint,
    notification_settings,
    observation,
)

RECEIVER_TOKEN = "Bearer receiver-credential-4242"
SUBSCRIBER_TOKEN = "Bearer subscriber-credential-9191"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return notification_settings(settings)


class Caller:
    def __init__(self, client: FlaskClient, hub: Hub, scope: str, **kw: Any):
        token = hub.auth.issue_direct("app", scope, **kw)["access_token"]
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}", **FHIR_JSON}

    def get(self, path: str) -> Any:
        return self.client.get(path, headers=self.headers)

    def post(self, path: str, resource: dict[str, Any]) -> Any:
        return self.client.post(path, json=resource, headers=self.headers)


def put(hub: Hub, resource: dict[str, Any]) -> None:
    hub.resources.update(resource["resourceType"], resource["id"], resource)


@pytest.fixture
def world(auth_client: FlaskClient, auth_hub: Hub) -> dict[str, Any]:
    register_app(auth_hub)
    clinical_data(auth_hub)
    auth_hub.auth.add_user("drother", PASSWORD, fhir_user="Practitioner/other")
    receiver = endpoint("http://127.0.0.1:9/hook", header=[f"Authorization: {RECEIVER_TOKEN}"])
    put(auth_hub, {**receiver, "id": "ep-spec"})
    role = {"resourceType": "PractitionerRole", "id": "role-spec", "active": True}
    role["practitioner"] = {"reference": "Practitioner/spec"}
    role["endpoint"] = [{"reference": "Endpoint/ep-spec"}]
    put(auth_hub, role)
    linked = observation("Patient/a")
    extension = {"url": "https://example.org/sent-to", "valueReference": {"reference": ""}}
    extension["valueReference"]["reference"] = "Endpoint/ep-spec"
    put(auth_hub, {**linked, "id": "obs-linked", "extension": [extension]})
    drheart = Caller(auth_client, auth_hub, "user/*.cruds", user="drheart")
    created = drheart.post(
        "/fhir/Subscription",
        {
            "resourceType": "Subscription",
            "status": "requested",
            "reason": "watch Alpha",
            "criteria": "Observation?patient=Patient/a",
            "channel": {
                "type": "rest-hook",
                "endpoint": "http://127.0.0.1:9/sub",
                "payload": "application/fhir+json",
                "header": [f"Authorization: {SUBSCRIBER_TOKEN}"],
            },
            "extension": [{"url": SIGNING, "valueString": SECRET}],
        },
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    return {"subscription": created.get_json()["id"], "drheart": drheart}


def _secret_free(text: str) -> bool:
    return all(s not in text for s in (SECRET, RECEIVER_TOKEN, SUBSCRIBER_TOKEN))


def test_secrets_are_masked_on_every_read_path(
    auth_client: FlaskClient, auth_hub: Hub, world: dict[str, Any]
) -> None:
    alice = Caller(auth_client, auth_hub, "patient/*.rs", user="alice", patient="a")
    sub = world["subscription"]
    paths = [
        "/fhir/Endpoint/ep-spec",
        "/fhir/Endpoint/ep-spec/_history/1",
        "/fhir/Endpoint?_id=ep-spec",
        "/fhir/Endpoint/ep-spec/_history",
        "/fhir/Endpoint/_history",
        "/fhir/PractitionerRole?_id=role-spec&_include=PractitionerRole:endpoint",
        "/fhir/Patient/a/$everything",
        f"/fhir/Subscription/{sub}",
        "/fhir/Subscription",
        f"/fhir/Subscription/{sub}/_history",
        "/fhir/_history",
    ]
    for path in paths:
        response = alice.get(path)
        assert response.status_code == 200, (path, response.get_data(as_text=True))
        text = response.get_data(as_text=True)
        assert _secret_free(text), path
        assert MASK in text, path
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": "Endpoint/ep-spec"}},
            {"request": {"method": "GET", "url": f"Subscription?_id={sub}"}},
        ],
    }
    answered = alice.post("/fhir", batch)
    assert answered.status_code == 200
    assert _secret_free(answered.get_data(as_text=True))
    assert answered.get_data(as_text=True).count(MASK) >= 4


def test_status_is_for_the_owner_or_an_admin(
    auth_client: FlaskClient, auth_hub: Hub, world: dict[str, Any]
) -> None:
    sub, drheart = world["subscription"], world["drheart"]
    alice = Caller(auth_client, auth_hub, "patient/*.rs", user="alice", patient="a")
    other = Caller(auth_client, auth_hub, "user/*.cruds", user="drother")
    admin = Caller(auth_client, auth_hub, "user/*.cruds", user="root")
    for path in (f"/fhir/Subscription/{sub}/$status", "/fhir/Endpoint/ep-spec/$status"):
        # The reproduction: a patient token saw the delivery history of anyone's subscriber.
        assert alice.get(path).status_code == 403, path
        assert other.get(path).status_code == 403, path
        assert drheart.get(path).status_code == 200, path
        assert admin.get(path).status_code == 200, path


def test_status_shows_owners_only_the_patients_they_may_read_now(
    auth_client: FlaskClient, auth_hub: Hub, world: dict[str, Any]
) -> None:
    drheart = world["drheart"]
    admin = Caller(auth_client, auth_hub, "user/*.cruds", user="root")
    team_b = {
        "resourceType": "CareTeam",
        "id": "team-b",
        "status": "active",
        "subject": {"reference": "Patient/b"},
        "participant": [{"member": {"reference": "Practitioner/spec"}}],
    }
    put(auth_hub, team_b)
    put(auth_hub, {**observation("Patient/a"), "id": "obs-a-new"})
    put(auth_hub, {**observation("Patient/b"), "id": "obs-b-new"})
    worker = NotificationWorker(auth_hub)  # fan-out only: deliveries stay queued
    try:
        while worker.dispatcher.run_once():
            pass
    finally:
        worker.shutdown()
    auth_hub.resources.delete("CareTeam", "team-b")  # drheart is off Beta's team now

    def patients(caller: Caller) -> list[str]:
        response = caller.get("/fhir/Endpoint/ep-spec/$status")
        assert response.status_code == 200
        return sorted(
            part["valueReference"]["reference"]
            for p in response.get_json()["parameter"]
            if p["name"] == "delivery"
            for part in p["part"]
            if part["name"] == "patient"
        )

    assert "Patient/b" in patients(admin) and "Patient/a" in patients(admin)
    seen = patients(drheart)
    assert "Patient/a" in seen and "Patient/b" not in seen
