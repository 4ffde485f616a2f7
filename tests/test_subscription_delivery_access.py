"""A Subscription's notifications carry its owner's access at delivery time (issue 15
item 3): rest-hook with full-resource payloads to a real loopback receiver, and websocket
pings through a real development server, both limited to what the owner may read when the
worker delivers, not when the Subscription was created."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from fhirhub.app import create_app
from fhirhub.config import Settings
from fhirhub.hub import Hub
from fhirhub.worker.runner import NotificationWorker
from tests.auth_helpers import clinical_data, register_app
from tests.helpers import FHIR_JSON
from tests.test_notifications_support import Receiver, notification_settings, wait_for
from tests.test_websocket import dev_server
from tests.websocket_support import no_message, open_socket

LOINC = "http://loinc.org"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return notification_settings(settings)


@pytest.fixture
def auth_worker(auth_hub: Hub) -> Iterator[NotificationWorker]:
    register_app(auth_hub)
    clinical_data(auth_hub)
    worker = NotificationWorker(auth_hub)
    worker.start()
    yield worker
    worker.shutdown()


def token(hub: Hub, scope: str, **kw: Any) -> dict[str, str]:
    issued = hub.auth.issue_direct("app", scope, **kw)["access_token"]
    return {"Authorization": f"Bearer {issued}", **FHIR_JSON}


def subscribe(client: FlaskClient, headers: dict[str, str], criteria: str, **channel: Any) -> str:
    resource = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "delivery-time access",
        "criteria": criteria,
        "channel": channel,
    }
    response = client.post("/fhir/Subscription", json=resource, headers=headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    return str(response.get_json()["id"])


def observe(hub: Hub, patient: str, code: str) -> str:
    """An Observation written as an import would (no token): only the worker decides."""
    resource = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{patient}"},
    }
    return hub.resources.create("Observation", resource).stored.resource_id


def delivery_state(hub: Hub, subscription: str, observation: str) -> dict[str, Any]:
    found = hub.db["deliveries"].find_one(
        {"sub": f"Subscription/{subscription}", "rid": observation}
    )
    return found or {}


def finished(hub: Hub, subscription: str, observation: str) -> dict[str, Any] | None:
    state = delivery_state(hub, subscription, observation)
    return state if state.get("st") in ("delivered", "skipped", "dead") else None


def test_patient_owner_is_told_only_about_their_own_compartment(
    auth_client: FlaskClient, auth_hub: Hub, auth_worker: NotificationWorker
) -> None:
    receiver = Receiver().start()
    try:
        alice = token(auth_hub, "user/*.cruds", user="alice")  # Patient/a's own login
        code = uuid.uuid4().hex
        sub = subscribe(
            auth_client,
            alice,
            f"Observation?code={LOINC}|{code}",  # no patient pinned: accepted at creation
            type="rest-hook",
            endpoint=receiver.url,
            payload="application/fhir+json",
        )
        # The reproduction: Patient/b's Observation reached alice's receiver in full.
        theirs = observe(auth_hub, "b", code)
        own = observe(auth_hub, "a", code)
        wait_for(lambda: finished(auth_hub, sub, own), 20, "alice's own observation")
        received = [r.json()["id"] for r in receiver.requests]
        assert received == [own], received
        skipped = delivery_state(auth_hub, sub, theirs)
        assert skipped["st"] == "skipped" and "owner may not read" in skipped["err"]
        # A delete is judged by the version it removed: Patient/b's stays unannounced.
        auth_hub.resources.delete("Observation", theirs)
        later = observe(auth_hub, "a", code)
        wait_for(lambda: finished(auth_hub, sub, later), 20, "alice's next observation")
        assert [r.json()["id"] for r in receiver.requests if r.body] == [own, later]
        assert all(r.headers["x-fhirhub-event"] != "delete" for r in receiver.requests)
        gone = auth_hub.db["deliveries"].find_one({"sub": f"Subscription/{sub}", "op": "delete"})
        assert gone is not None and gone["st"] == "skipped", gone
    finally:
        receiver.stop()


def test_practitioner_taken_off_the_team_gets_no_more(
    auth_client: FlaskClient, auth_hub: Hub, auth_worker: NotificationWorker
) -> None:
    receiver = Receiver().start()
    try:
        drheart = token(auth_hub, "user/*.cruds", user="drheart")  # on Patient/a's team
        code = uuid.uuid4().hex
        sub = subscribe(
            auth_client,
            drheart,
            f"Observation?patient=Patient/a&code={LOINC}|{code}",
            type="rest-hook",
            endpoint=receiver.url,
            payload="application/fhir+json",
        )
        first = observe(auth_hub, "a", code)
        wait_for(lambda: finished(auth_hub, sub, first), 20, "the first observation")
        assert [r.json()["id"] for r in receiver.requests] == [first]
        team = auth_hub.resources.read("CareTeam", "team-a").resource or {}
        left = {k: v for k, v in team.items() if k != "participant"}
        auth_hub.resources.update("CareTeam", "team-a", left)
        later = observe(auth_hub, "a", code)
        state = wait_for(lambda: finished(auth_hub, sub, later), 20, "the later observation")
        assert state["st"] == "skipped" and "owner may not read" in state["err"]
        assert [r.json()["id"] for r in receiver.requests] == [first]
        # Back on the team: told again, from the next change on.
        auth_hub.resources.update("CareTeam", "team-a", team)
        again = observe(auth_hub, "a", code)
        wait_for(lambda: finished(auth_hub, sub, again), 20, "after rejoining")
        assert [r.json()["id"] for r in receiver.requests] == [first, again]
    finally:
        receiver.stop()


def test_websocket_pings_carry_the_owners_access(
    auth_client: FlaskClient, auth_hub: Hub, auth_worker: NotificationWorker
) -> None:
    alice = token(auth_hub, "user/*.cruds", user="alice")
    code = uuid.uuid4().hex
    sub = subscribe(auth_client, alice, f"Observation?code={LOINC}|{code}", type="websocket")
    drheart = token(auth_hub, "user/*.cruds", user="drheart")["Authorization"].split()[1]
    with dev_server(create_app(auth_hub.settings, auth_hub)) as url:
        with open_socket(url, drheart) as ws:  # may read it, but it is not theirs
            ws.send(f"bind {sub}")
            assert "only its owner or an admin" in str(ws.recv(timeout=10))
        with open_socket(url, alice["Authorization"].split()[1]) as ws:
            ws.send(f"bind {sub}")
            assert ws.recv(timeout=10) == f"bound {sub}"
            theirs = observe(auth_hub, "b", code)
            own = observe(auth_hub, "a", code)
            assert ws.recv(timeout=20) == f"ping {sub}"
            wait_for(lambda: finished(auth_hub, sub, own), 20, "alice's own ping")
            assert no_message(ws, 0.5)
    skipped = delivery_state(auth_hub, sub, theirs)
    assert skipped["st"] == "skipped" and "owner may not read" in skipped["err"]


def test_criteria_only_matching_what_the_owner_may_not_read_are_refused(
    auth_client: FlaskClient, auth_hub: Hub, auth_worker: NotificationWorker
) -> None:
    alice = token(auth_hub, "user/*.cruds", user="alice")
    drheart = token(auth_hub, "user/*.cruds", user="drheart")
    channel = {"type": "rest-hook", "endpoint": "http://127.0.0.1:9/hook"}
    refused = [
        (alice, "Observation?patient=Patient/b"),  # another patient's data
        (alice, "Practitioner?name=Heart"),  # a patient watches only their compartment
        (drheart, "Observation?subject=Patient/b"),  # not on Patient/b's team
    ]
    for headers, criteria in refused:
        resource = {"resourceType": "Subscription", "status": "requested", "reason": "x"}
        resource.update(criteria=criteria, channel=channel)
        answer = auth_client.post("/fhir/Subscription", json=resource, headers=headers)
        assert answer.status_code == 403, (criteria, answer.get_data(as_text=True))
    subscribe(auth_client, drheart, "Observation?patient=Patient/a", **channel)
