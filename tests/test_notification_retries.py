"""Delivery retries against a real loopback receiver, with time shrunk through settings:
a receiver down far longer than the attempts budget gets every event in order when it comes
back; one event the receiver keeps refusing is dead-lettered alone while the rest flow in
order; a receiver refusing everything for a while loses nothing."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from fhirhub.config import Settings
from fhirhub.hub import Hub
from fhirhub.storage.deliveries import DEAD
from fhirhub.worker.runner import NotificationWorker
from tests.helpers import body, create
from tests.test_notifications_support import (
    Receiver,
    care_team,
    notification_settings,
    observation,
    wait_for,
)

MAX_REFUSALS = 3
POISON = b"POISON-EVENT"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Backoff 50 ms doubling to 200 ms: the old policy gave up after 3 attempts (~0.35 s).
    return notification_settings(
        settings,
        notify_max_attempts=MAX_REFUSALS,
        notify_retry_base_ms=50,
        notify_retry_max_ms=200,
        notify_retry_horizon_ms=120_000,
    )


def deliveries(hub: Hub, subscriber: str) -> list[dict[str, Any]]:
    return list(hub.db["deliveries"].find({"sub": subscriber}))


def observations_received(receiver: Receiver) -> list[str]:
    return [f for f in receiver.focus() if f.startswith("Observation/")]


def endpoint_status(client: FlaskClient, endpoint: str) -> str:
    return str(body(client.get(f"/fhir/{endpoint}"))["status"])


def test_receiver_down_far_beyond_the_attempts_gets_every_event_in_order(
    client: FlaskClient, hub: Hub, receiver: Receiver, worker: NotificationWorker
) -> None:
    receiver.stop()
    setup = care_team(client, receiver.url)
    ids = [body(create(client, observation(setup.patient, 60 + i)))["id"] for i in range(5)]
    wait_for(
        lambda: (
            max((d.get("n", 0) for d in deliveries(hub, setup.endpoint)), default=0)
            >= 4 * MAX_REFUSALS
        ),
        15,
        "many failed attempts on the head of the queue",
    )
    assert endpoint_status(client, setup.endpoint) == "active"
    receiver.start()
    expected = [f"Observation/{i}/_history/1" for i in ids]
    wait_for(lambda: observations_received(receiver) == expected, 15, "every event, in order")
    assert not [d for d in deliveries(hub, setup.endpoint) if d["st"] == DEAD]
    assert endpoint_status(client, setup.endpoint) == "active"


def test_a_poison_event_is_dead_lettered_alone_and_the_rest_flow_in_order(
    client: FlaskClient, hub: Hub, receiver: Receiver, worker: NotificationWorker
) -> None:
    receiver.respond = lambda headers, data: 500 if POISON in data else 200
    setup = care_team(client, receiver.url)
    first = body(create(client, observation(setup.patient, 61)))["id"]
    poison = body(
        create(client, {**observation(setup.patient, 62), "note": [{"text": POISON.decode()}]})
    )["id"]
    later = [body(create(client, observation(setup.patient, 63 + i)))["id"] for i in range(3)]
    expected = [f"Observation/{i}/_history/1" for i in [first, *later]]
    wait_for(lambda: observations_received(receiver) == expected, 15, "the others, in order")
    dead = [d for d in deliveries(hub, setup.endpoint) if d["st"] == DEAD]
    assert [d["rid"] for d in dead] == [poison]
    assert dead[0]["nr"] >= MAX_REFUSALS and "HTTP 500" in dead[0]["err"]
    assert "accepted a later event" in dead[0]["err"]
    assert endpoint_status(client, setup.endpoint) == "active"
    status = body(client.get(f"/fhir/{setup.endpoint}/$status?state=dead"))
    delivery = next(p for p in status["parameter"] if p["name"] == "delivery")
    parts = {p["name"]: p for p in delivery["part"]}
    assert parts["failure"]["valueCode"] == "refused"
    assert parts["refusals"]["valueInteger"] >= MAX_REFUSALS
    audits = hub.audit.search({"entity": setup.endpoint}, None, 10)
    assert len(audits) == 1 and f"Observation/{poison}" in audits[0]["entity"]
    # and the queue goes on
    after = body(create(client, observation(setup.patient, 70)))["id"]
    wait_for(lambda: f"Observation/{after}/_history/1" in receiver.focus())


def test_a_receiver_refusing_everything_for_a_while_loses_nothing(
    client: FlaskClient, hub: Hub, receiver: Receiver, worker: NotificationWorker
) -> None:
    setup = care_team(client, receiver.url)
    wait_for(lambda: receiver.requests, what="set-up notifications")
    receiver.respond = lambda headers, data: 500
    ids = [body(create(client, observation(setup.patient, 60 + i)))["id"] for i in range(4)]
    wait_for(
        lambda: sum(d.get("nr", 0) for d in deliveries(hub, setup.endpoint)) >= 3 * MAX_REFUSALS,
        15,
        "refusals of the head and of the probes behind it",
    )
    receiver.respond = None
    expected = [f"Observation/{i}/_history/1" for i in ids]
    wait_for(lambda: observations_received(receiver) == expected, 15, "every event, in order")
    assert not [d for d in deliveries(hub, setup.endpoint) if d["st"] == DEAD]
    assert endpoint_status(client, setup.endpoint) == "active"
