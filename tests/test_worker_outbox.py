"""Dispatcher against the real outbox: uncommitted, compensated and crash-repeated events;
leases under contention. Runs the dispatcher pass by pass (no threads) to be exact."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from flask.testing import FlaskClient

from fhirhub.config import Settings
from fhirhub.fhir.errors import ConfigurationError
from fhirhub.hub import Hub
from fhirhub.storage.deliveries import DELIVERIES
from fhirhub.storage.delivery_leases import LeaseStore
from fhirhub.storage.documents import PUB_DONE, PUB_PENDING, RESOURCES, TRANSACTIONS
from fhirhub.storage.outbox import OutboxStore
from fhirhub.storage.store import utc_now_ms
from fhirhub.storage.transactions import compensate
from fhirhub.worker.runner import NotificationWorker
from tests.test_notifications_support import (
    care_team,
    notification_settings,
    observation,
    wait_for,
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The shared fresh-database settings, with fast notification timings."""
    return notification_settings(settings)


def deliveries_for(hub: Hub, event_key: str) -> int:
    return hub.db[DELIVERIES].count_documents({"ev": event_key})


def test_transaction_events_wait_for_commit_and_compensated_ones_never_go(
    client: FlaskClient, hub: Hub
) -> None:
    setup = care_team(client, "http://127.0.0.1:9/unused")
    dispatcher = NotificationWorker(hub).dispatcher
    dispatcher.run_once()
    for txn in ("committing", "failing"):
        hub.db[TRANSACTIONS].insert_one(
            {"_id": txn, "state": "pending", "ts": utc_now_ms(), "w": []}
        )
    kept = hub.resources.create("Observation", observation(setup.patient), txn="committing").stored
    lost = hub.resources.create("Observation", observation(setup.patient), txn="failing").stored
    kept_key = f"Observation/{kept.resource_id}/1"
    lost_key = f"Observation/{lost.resource_id}/1"
    dispatcher.run_once()
    assert deliveries_for(hub, kept_key) == deliveries_for(hub, lost_key) == 0
    assert hub.db[RESOURCES].find_one({"_id": kept_key})["pub"] == PUB_PENDING
    hub.db[TRANSACTIONS].delete_one({"_id": "committing"})  # the commit point
    compensate(hub.store, "failing")
    dispatcher.run_once()
    assert deliveries_for(hub, kept_key) == 1
    assert hub.db[RESOURCES].find_one({"_id": kept_key})["pub"] == PUB_DONE
    assert (
        deliveries_for(hub, lost_key) == 0 and hub.db[RESOURCES].find_one({"_id": lost_key}) is None
    )


class CrashAfterEnqueue(OutboxStore):
    """Fault injection: the process 'dies' after queueing deliveries, before marking."""

    def mark_published(self, key: str) -> None:
        raise SystemExit("killed between enqueue and mark")


def test_crash_between_enqueue_and_mark_repeats_without_duplicates(
    client: FlaskClient, hub: Hub
) -> None:
    setup = care_team(client, "http://127.0.0.1:9/unused")
    dispatcher = NotificationWorker(hub).dispatcher
    dispatcher.run_once()
    created = hub.resources.create("Observation", observation(setup.patient)).stored
    key = f"Observation/{created.resource_id}/1"
    dispatcher.outbox = CrashAfterEnqueue(hub.db)
    with pytest.raises(SystemExit):
        dispatcher.run_once()
    assert deliveries_for(hub, key) == 1
    assert hub.db[RESOURCES].find_one({"_id": key})["pub"] == PUB_PENDING
    dispatcher.outbox = OutboxStore(hub.db)  # "restarted"
    dispatcher.fanout.reset()
    assert dispatcher.run_once() == 1
    assert deliveries_for(hub, key) == 1  # same key: fanned out again, queued once
    assert hub.db[RESOURCES].find_one({"_id": key})["pub"] == PUB_DONE


def test_lease_has_exactly_one_winner_and_expires(hub: Hub) -> None:
    leases = LeaseStore(hub.db)
    leases.ensure_indexes()
    winners: list[str] = []
    barrier = threading.Barrier(12)

    def contend(n: int) -> None:
        barrier.wait()
        if leases.acquire("queue:X", f"owner-{n}", timedelta(milliseconds=400)):
            winners.append(f"owner-{n}")

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
    assert leases.acquire("queue:X", "late", timedelta(seconds=1)) is None
    holder = leases.current("queue:X")
    assert holder is not None and holder["owner"] == winners[0]
    taken = wait_for(lambda: leases.acquire("queue:X", "late", timedelta(seconds=1)), 3)
    assert utc_now_ms() >= holder["until"] and taken.generation == 2
    leases.release(taken)
    assert leases.acquire("queue:X", "third", timedelta(seconds=1)) is not None


def test_lease_shorter_than_a_send_is_refused(settings: Settings, definitions: object) -> None:
    hub = Hub(settings.with_overrides(worker_lease_ms=1000, notify_timeout_ms=1000))
    try:
        with pytest.raises(ConfigurationError):
            NotificationWorker(hub)
    finally:
        hub.close()


def test_routes_looked_up_ahead_for_a_batch_respect_a_care_team_change_inside_it(
    client: FlaskClient, hub: Hub
) -> None:
    """The dispatcher looks up the routes of a batch's patients concurrently up front, but
    only up to the first care-team change: events after it see the change."""
    setups = [care_team(client, f"http://127.0.0.1:9/ep{k}") for k in range(3)]
    dispatcher = NotificationWorker(hub).dispatcher
    dispatcher.run_once()
    before = [hub.resources.create("Observation", observation(s.patient)).stored for s in setups]
    last = setups[-1]
    team = hub.resources.read("CareTeam", last.team).resource
    left = {k: v for k, v in team.items() if k != "participant"}
    hub.resources.update("CareTeam", last.team, left)
    after = hub.resources.create("Observation", observation(last.patient)).stored
    dispatcher.run_once()  # one batch: three readings, the team change, one more reading
    for stored in before:
        assert deliveries_for(hub, f"Observation/{stored.resource_id}/1") == 1
    assert deliveries_for(hub, f"Observation/{after.resource_id}/1") == 0
