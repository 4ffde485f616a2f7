"""Reactions run by the worker on committed changes: once per event (also when the
dispatcher repeats a batch), off the request thread, writing FHIR through the services; a
failing reaction is retried while notifications flow on."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from flask.testing import FlaskClient

from fhirhub.config import Settings
from fhirhub.hub import Hub
from fhirhub.reactions.registry import Reaction
from fhirhub.storage.outbox import OutboxStore
from fhirhub.storage.timers import DONE
from fhirhub.subscriptions.events import ChangeEvent
from fhirhub.worker.runner import NotificationWorker
from tests.helpers import body, create, patient
from tests.test_notifications_support import (
    Receiver,
    care_team,
    notification_settings,
    observation,
    wait_for,
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return notification_settings(settings)


class Recorder:
    def __init__(self, hub: Hub, fail_first: int = 0):
        self.hub = hub
        self.events: list[tuple[str, str, str]] = []
        self.fail_first = fail_first
        self.lock = threading.Lock()

    def __call__(self, event: ChangeEvent) -> str:
        with self.lock:
            if self.fail_first > 0:
                self.fail_first -= 1
                raise RuntimeError("not yet")
        resource = event.resource or {}
        if resource.get("valueQuantity", {}).get("value", 0) > 100:
            flag = {
                "resourceType": "Flag",
                "id": f"high-{event.resource_id}",
                "status": "active",
                "code": {"text": "High heart rate"},
                "subject": resource["subject"],
            }
            self.hub.resources.update("Flag", flag["id"], flag)  # idempotent by id
        with self.lock:
            self.events.append((event.key, event.operation, threading.current_thread().name))
        return "recorded"


def test_reactions_run_once_per_event_in_the_worker(
    client: FlaskClient, hub: Hub, worker: NotificationWorker
) -> None:
    recorder = Recorder(hub)
    hub.reactions.register(Reaction("record", frozenset({"Observation"}), recorder))
    pid = body(create(client, patient()))["id"]
    obs = body(create(client, observation(f"Patient/{pid}", value=130)))
    client.delete(f"/fhir/Observation/{obs['id']}")
    wait_for(lambda: len(recorder.events) == 2, 15, "both events to be reacted to")
    # The timer pool runs the two jobs in parallel: either may finish first.
    events = sorted(recorder.events)
    keys = [e[0] for e in events]
    assert keys == [f"Observation/{obs['id']}/1", f"Observation/{obs['id']}/2"]
    assert [e[1] for e in events] == ["create", "delete"]
    assert all(e[2].startswith("timer") for e in recorder.events)  # never the request
    assert client.get(f"/fhir/Flag/high-{obs['id']}").status_code == 200
    # The dispatcher repeating a batch (a crash before marking it) changes nothing.
    outbox = OutboxStore(hub.db)
    events = [ChangeEvent.from_history(outbox.load(k) or {}) for k in keys]
    hub.reaction_queue.enqueue(events)
    time.sleep(1.0)
    assert len(recorder.events) == 2
    # (Domain reactions, e.g. monitoring's, run on the same events: count this one's.)
    jobs = [
        j
        for j in hub.timer_store.jobs.find({"kind": "reaction"})
        if j["key"].startswith("reaction:record:")
    ]
    assert len(jobs) == 2 and {j["st"] for j in jobs} == {DONE}


def test_a_failing_reaction_retries_without_blocking_notifications(
    client: FlaskClient, hub: Hub, receiver: Receiver
) -> None:
    recorder = Recorder(hub, fail_first=1)
    hub.reactions.register(Reaction("flaky", frozenset({"Observation"}), recorder))
    worker = NotificationWorker(hub)
    worker.start()
    try:
        setup = care_team(client, receiver.url)
        obs = body(create(client, observation(setup.patient)))
        started = time.monotonic()
        wait_for(
            lambda: f"Observation/{obs['id']}/_history/1" in receiver.focus(),
            10,
            "the care team's notification",
        )
        notified = time.monotonic() - started
        assert not recorder.events  # the reaction failed once and waits for its retry
        wait_for(lambda: recorder.events, 15, "the reaction's retry")
        assert notified < 2.0  # not held up by the failing reaction (retried after 2 s)
        key = f"reaction:flaky:Observation/{obs['id']}/1"
        # The runner marks the job done just after the handler returns.
        wait_for(
            lambda: (hub.timer_store.jobs.find_one({"key": key}) or {}).get("st") == DONE,
            10,
            "the job to be done",
        )
        job: dict[str, Any] = hub.timer_store.jobs.find_one({"key": key})
        assert job["st"] == DONE and job["n"] == 2
    finally:
        assert worker.shutdown()
