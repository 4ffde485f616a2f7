"""A changed notification address is audited and gets data only after it answered a
verification ping; stored credentials never follow a change of address (issue 15 item 4).
Real loopback receivers, a real worker, the audit log read through /fhir/AuditEvent."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from fhirhub.config import Settings
from fhirhub.hub import Hub
from fhirhub.subscriptions.secrets import MASK
from fhirhub.worker.runner import NotificationWorker
from tests.auth_helpers import clinical_data, register_app
from tests.helpers import FHIR_JSON
from tests.test_notifications_support import (
    Receiver,
    endpoint,
    notification_settings,
    observation,
    wait_for,
)

CREDENTIAL = "Bearer receiver-credential-5150"
VERIFY = "x-fhirhub-verification"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return notification_settings(settings)


class Gate:
    """A receiver answer: verification pings get `ping_status`, data 200; every request
    is logged (the Receiver keeps only the accepted ones)."""

    def __init__(self) -> None:
        self.ping_status = 503
        self.log: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()

    def __call__(self, headers: dict[str, str], data: bytes) -> int:
        kind = "ping" if VERIFY in headers else "data"
        with self.lock:
            self.log.append((kind, data))
        return self.ping_status if kind == "ping" else 200

    def kinds(self) -> list[str]:
        with self.lock:
            return [k for k, _ in self.log]


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    old, new = Receiver().start(), Receiver().start()
    yield old, new
    old.stop()
    new.stop()


@pytest.fixture
def auth_worker(auth_hub: Hub) -> Iterator[NotificationWorker]:
    register_app(auth_hub)
    clinical_data(auth_hub)
    worker = NotificationWorker(auth_hub)
    worker.start()
    yield worker
    worker.shutdown()


def bearer(hub: Hub, scope: str, **kw: Any) -> dict[str, str]:
    issued = hub.auth.issue_direct("app", scope, **kw)["access_token"]
    return {"Authorization": f"Bearer {issued}", **FHIR_JSON}


def observe(hub: Hub, patient: str) -> str:
    return hub.resources.create("Observation", observation(f"Patient/{patient}")).stored.resource_id


def sent(receiver: Receiver, observation_id: str) -> bool:
    return any(
        r.headers.get("x-fhirhub-resource", "").startswith(f"Observation/{observation_id}/")
        for r in receiver.requests
    )


def test_endpoint_address_change_is_audited_and_verified_before_use(
    auth_client: FlaskClient,
    auth_hub: Hub,
    auth_worker: NotificationWorker,
    receivers: tuple[Receiver, Receiver],
) -> None:
    old, new = receivers
    gate = Gate()
    new.respond = gate
    auth_hub.resources.update(
        "Endpoint",
        "ep-spec",
        {**endpoint(old.url, header=[f"Authorization: {CREDENTIAL}"]), "id": "ep-spec"},
    )
    role = {"resourceType": "PractitionerRole", "id": "role-spec", "active": True}
    role["practitioner"] = {"reference": "Practitioner/spec"}
    role["endpoint"] = [{"reference": "Endpoint/ep-spec"}]
    auth_hub.resources.update("PractitionerRole", "role-spec", role)
    first = observe(auth_hub, "a")  # an address set at creation needs no ping
    wait_for(lambda: sent(old, first), 20, "the first notification")
    assert not any(VERIFY in r.headers for r in old.requests)
    before = len(old.requests)  # the clinical data's notifications, then `first`, in order

    drheart = bearer(auth_hub, "user/*.cruds", user="drheart")  # the Endpoint's owner
    stored = auth_client.get("/fhir/Endpoint/ep-spec", headers=drheart).get_json()
    moved = {**stored, "address": new.url}
    # The stored credential stays with the old address: sent back masked it is refused.
    carried = auth_client.put("/fhir/Endpoint/ep-spec", json=moved, headers=drheart)
    assert carried.status_code == 422, carried.get_data(as_text=True)
    assert stored["header"] == [f"Authorization: {MASK}"]
    moved["header"] = ["Authorization: Bearer new-receiver-credential"]
    changed = auth_client.put("/fhir/Endpoint/ep-spec", json=moved, headers=drheart)
    assert changed.status_code == 200, changed.get_data(as_text=True)

    second = observe(auth_hub, "a")
    wait_for(lambda: gate.kinds().count("ping") >= 2, 20, "verification pings, refused")
    assert "data" not in gate.kinds()  # nothing sent before the address is confirmed
    assert len(old.requests) == before  # nor to the old one
    gate.ping_status = 200
    wait_for(lambda: "data" in gate.kinds(), 20, "data after verification")
    kinds = gate.kinds()
    assert kinds[-2:] == ["ping", "data"] and kinds.count("data") == 1
    ping = next(r for r in new.requests if VERIFY in r.headers)
    assert ping.body == b"" and ping.headers["authorization"] == "Bearer new-receiver-credential"
    data = next(r for r in new.requests if VERIFY not in r.headers)
    assert data.headers["x-fhirhub-resource"].startswith(f"Observation/{second}/")
    third = observe(auth_hub, "a")  # verified once: no more pings
    wait_for(lambda: gate.kinds().count("data") == 2, 20, "the next notification")
    assert gate.kinds()[-1] == "data" and "x-fhirhub-resource" in new.requests[-1].headers
    assert new.requests[-1].headers["x-fhirhub-resource"].startswith(f"Observation/{third}/")

    admin = bearer(auth_hub, "user/*.cruds", user="root")

    def audited() -> list[dict[str, Any]]:
        found = auth_client.get("/fhir/AuditEvent?entity=Endpoint/ep-spec", headers=admin)
        return [
            e["resource"]
            for e in found.get_json().get("entry", [])
            if any(c["code"] == "notification-address-change" for c in e["resource"]["subtype"])
        ]

    (event,) = wait_for(audited, 20, "the address-change AuditEvent")
    assert event["agent"][0]["name"] == "user:drheart"
    details = {d["type"]: d["valueString"] for d in event["entity"][0]["detail"]}
    assert details == {"address": new.url, "previous-address": old.url}
    assert event["entity"][0]["what"]["reference"].startswith("Endpoint/ep-spec/_history/")


def test_subscription_endpoint_change_is_verified_too(
    auth_client: FlaskClient,
    auth_hub: Hub,
    auth_worker: NotificationWorker,
    receivers: tuple[Receiver, Receiver],
) -> None:
    old, new = receivers
    gate = Gate()
    gate.ping_status = 200
    new.respond = gate
    drheart = bearer(auth_hub, "user/*.cruds", user="drheart")
    resource = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "address change",
        "criteria": "Observation?patient=Patient/a",
        "channel": {"type": "rest-hook", "endpoint": old.url, "payload": "application/fhir+json"},
    }
    created = auth_client.post("/fhir/Subscription", json=resource, headers=drheart)
    assert created.status_code == 201, created.get_data(as_text=True)
    sub = created.get_json()
    first = observe(auth_hub, "a")
    wait_for(lambda: sent(old, first), 20, "the first notification")
    before = len(old.requests)
    moved = {**sub, "channel": {**sub["channel"], "endpoint": new.url}}
    # A client cannot forge or drop the server's mark: whatever it sends is replaced.
    moved["extension"] = [e for e in sub["extension"] if "address-change" not in e["url"]]
    updated = auth_client.put(f"/fhir/Subscription/{sub['id']}", json=moved, headers=drheart)
    assert updated.status_code == 200, updated.get_data(as_text=True)
    marks = [e for e in updated.get_json()["extension"] if "address-change" in e["url"]]
    assert len(marks) == 1
    observe(auth_hub, "a")
    wait_for(lambda: "data" in gate.kinds(), 20, "data after verification")
    assert gate.kinds() == ["ping", "data"]
    assert len(old.requests) == before
