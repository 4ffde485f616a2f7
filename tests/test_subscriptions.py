"""R4 Subscriptions: write-time checks, rest-hook delivery, error, end and off."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from fhirhub.config import Settings
from fhirhub.hub import Hub
from fhirhub.subscriptions.secrets import MASK
from fhirhub.worker.runner import NotificationWorker
from tests.helpers import FHIR_JSON, assert_outcome, body, create, patient
from tests.test_notifications_support import (
    SECRET,
    SIGNING,
    Receiver,
    notification_settings,
    observation,
    outbox_drained,
    put,
    wait_for,
)

HEART_RATE = "Observation?code=http://loinc.org|8867-4"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared fresh-database settings, with fast notification timings (a receiver
    unavailable for 1.5 s is given up)."""
    return notification_settings(settings, notify_max_attempts=3, notify_retry_horizon_ms=1500)


def subscription(endpoint: str, criteria: str = HEART_RATE, **channel: Any) -> dict[str, Any]:
    return {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "monitor heart rate",
        "criteria": criteria,
        "channel": {"type": "rest-hook", "endpoint": endpoint, **channel},
        "extension": [{"url": SIGNING, "valueString": SECRET}],
    }


def post(client: FlaskClient, resource: dict[str, Any]) -> Any:
    return client.post(f"/fhir/{resource['resourceType']}", json=resource, headers=FHIR_JSON)


def test_requested_subscription_is_activated_with_a_secret(client: FlaskClient, hub: Hub) -> None:
    resource = subscription("http://127.0.0.1:9/hook")
    del resource["extension"]
    created = body(create(client, resource))
    assert created["status"] == "active"
    secret = next(e for e in created["extension"] if e["url"] == SIGNING)["valueString"]
    assert len(secret) >= 32  # generated: shown once, in the create response

    def stored() -> str:
        resource = hub.resources.read("Subscription", created["id"]).resource or {}
        return str(next(e for e in resource["extension"] if e["url"] == SIGNING)["valueString"])

    updated = put(client, {k: v for k, v in created.items() if k != "extension"})
    kept = next(e for e in updated["extension"] if e["url"] == SIGNING)["valueString"]
    assert kept == MASK and stored() == secret  # an update that omits the secret keeps it
    read_back = body(client.get(f"/fhir/Subscription/{created['id']}"))
    put(client, read_back)  # written back as read (masked): still the same secret
    assert stored() == secret


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"criteria": "Observation?no-such-param=1"}, "criteria"),
        ({"criteria": "NotAType?code=1"}, "criteria"),
        ({"channel": {"type": "email", "endpoint": "mailto:a@example.org"}}, "not supported"),
        ({"channel": {"type": "rest-hook", "endpoint": "ftp://127.0.0.1/x"}}, "http(s)"),
        ({"channel": {"type": "rest-hook", "endpoint": "http://169.254.169.254/"}}, "not allow"),
        (
            {
                "channel": {
                    "type": "rest-hook",
                    "endpoint": "http://127.0.0.1/",
                    "payload": "application/fhir+xml",
                }
            },
            "payload",
        ),
        (
            {
                "channel": {
                    "type": "rest-hook",
                    "endpoint": "http://127.0.0.1/",
                    "header": ["bad header"],
                }
            },
            "Name: value",
        ),
    ],
)
def test_unusable_subscriptions_are_rejected(
    client: FlaskClient, change: dict[str, Any], fragment: str
) -> None:
    resource = {**subscription("http://127.0.0.1:9/hook"), **change}
    assert_outcome(post(client, resource), 422, fragment)


def test_rest_hook_sends_matching_resources_with_headers(
    client: FlaskClient, receiver: Receiver, worker: NotificationWorker
) -> None:
    create(
        client,
        subscription(
            receiver.url,
            payload="application/fhir+json",
            header=["Authorization: Bearer abc123"],
        ),
    )
    subject = f"Patient/{body(create(client, patient()))['id']}"
    other = {
        **observation(subject),
        "code": {"coding": [{"system": "http://loinc.org", "code": "1-8"}]},
    }
    create(client, other)
    obs = body(create(client, observation(subject)))
    wait_for(lambda: receiver.requests, what="the rest-hook notification")
    request = receiver.requests[0]
    assert request.json()["id"] == obs["id"]  # the non-matching one came first and was not sent
    assert request.headers["authorization"] == "Bearer abc123"
    assert request.headers["content-type"].startswith("application/fhir+json")
    assert request.signature_ok
    assert len(receiver.requests) == 1


def test_subscription_without_payload_is_a_ping(
    client: FlaskClient, receiver: Receiver, worker: NotificationWorker
) -> None:
    create(client, subscription(receiver.url, criteria="Patient"))
    created = body(create(client, patient()))
    wait_for(lambda: receiver.requests)
    ping = receiver.requests[0]
    assert ping.body == b"" and ping.signature_ok
    assert ping.headers["x-fhirhub-resource"] == f"Patient/{created['id']}/_history/1"


def test_failing_subscription_ends_in_error_with_audit_event(
    client: FlaskClient, hub: Hub, receiver: Receiver, worker: NotificationWorker
) -> None:
    receiver.status = 503
    sub = body(create(client, subscription(receiver.url, criteria="Patient")))
    create(client, patient())
    errored = wait_for(
        lambda: (
            (r := body(client.get(f"/fhir/Subscription/{sub['id']}")))["status"] == "error" and r
        )
    )
    assert "HTTP 503" in errored["error"]
    status = body(client.get(f"/fhir/Subscription/{sub['id']}/$status"))
    params = {p["name"]: p for p in status["parameter"] if p["name"] != "delivery"}
    assert params["dead"]["valueInteger"] == 1 and params["status"]["valueCode"] == "error"
    delivery = next(p for p in status["parameter"] if p["name"] == "delivery")
    parts = {p["name"]: p for p in delivery["part"]}
    # 503 says "not now": retried until the horizon, not given up after 3 attempts
    assert parts["attempts"]["valueInteger"] > 3 and parts["http-status"]["valueInteger"] == 503
    # the audit log behind GET [base]/AuditEvent (served from it when SMART auth is on)
    audits = hub.audit.search({"entity": f"Subscription/{sub['id']}"}, None, 10)
    assert len(audits) == 1 and audits[0]["res"]["outcome"] == "8"
    assert "HTTP 503" in audits[0]["res"]["outcomeDesc"]
    # requested again: active, and the next change is delivered
    receiver.status = 200
    put(client, {**errored, "status": "requested"})
    created = body(create(client, patient()))
    wait_for(lambda: f"Patient/{created['id']}/_history/1" in receiver.focus())


def test_off_and_ended_subscriptions_get_nothing(
    client: FlaskClient, hub: Hub, receiver: Receiver, worker: NotificationWorker
) -> None:
    off = body(create(client, subscription(receiver.url, criteria="Patient")))
    put(client, {**off, "status": "off"})
    ended = body(
        create(
            client,
            {**subscription(receiver.url, criteria="Patient"), "end": "2020-01-01T00:00:00Z"},
        )
    )
    wait_for(
        lambda: body(client.get(f"/fhir/Subscription/{ended['id']}"))["status"] == "off",
        what="the ended subscription switched off",
    )
    create(client, patient())
    wait_for(lambda: outbox_drained(hub))
    assert hub.db["deliveries"].count_documents({}) == 0
    assert receiver.requests == []


def test_names_resolving_to_forbidden_addresses_are_dead_lettered_at_once(
    client: FlaskClient, settings: Settings, definitions: object, receiver: Receiver
) -> None:
    # A name is only resolved at delivery; a worker allowing public addresses only refuses
    # `localhost` -> 127.0.0.1 without sending anything and without retrying.
    url = f"http://localhost:{receiver.port}/hook"
    sub = body(create(client, subscription(url, criteria="Patient")))
    strict = Hub(settings.with_overrides(notify_allowed_hosts="public"))
    strict.__dict__["definitions"] = definitions
    worker = NotificationWorker(strict)
    worker.start()
    try:
        create(client, patient())
        errored = wait_for(
            lambda: (
                (r := body(client.get(f"/fhir/Subscription/{sub['id']}")))["status"] == "error"
                and r
            )
        )
        dead = strict.db["deliveries"].find_one({"sub": f"Subscription/{sub['id']}"})
    finally:
        worker.shutdown()
        strict.close()
    assert "not allow" in errored["error"]
    assert dead is not None and dead["st"] == "dead" and dead["n"] == 1
    assert receiver.requests == []
