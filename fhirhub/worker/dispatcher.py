"""Dispatcher: committed outbox events -> per-subscriber deliveries, in commit order.

One dispatcher at a time (a lease; any worker process can take over), handling events
oldest first, so each subscriber's queue is filled in the order changes committed and the
fan-out caches can be invalidated exactly. Per batch: one scan of the outbox, commit checks
and done-marks as concurrent point operations (FerretDB does not push `$in` down), and one
insert for all deliveries. A crash between insert and mark repeats the batch, which the
deliveries' deterministic keys make harmless; nothing is lost.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from pymongo.errors import PyMongoError

from fhirhub.fhir.errors import FhirError
from fhirhub.reactions.registry import ReactionQueue
from fhirhub.service.resources import ResourceService
from fhirhub.storage.deliveries import PENDING, DeliveryStore, delivery_key
from fhirhub.storage.delivery_leases import Lease, LeaseStore
from fhirhub.storage.outbox import OutboxStore
from fhirhub.storage.websockets import SocketStore
from fhirhub.subscriptions.events import ChangeEvent
from fhirhub.subscriptions.fanout import ROUTING_TYPES, FanOut, Target

log = logging.getLogger(__name__)

LEASE_NAME = "dispatch"
BATCH = 100
ORPHAN_AGE = timedelta(seconds=30)  # a plain write unfinished this long: its writer died
ORPHAN_RECHECK = timedelta(seconds=5)
POISON_LIMIT = 10
RETENTION = timedelta(days=30)  # delivered/skipped records kept for $status
PRUNE_EVERY = timedelta(hours=1)
SWEEP_EVERY = timedelta(seconds=30)  # websocket hand-overs of web processes that died


class EventCache:
    """Recently dispatched history documents (immutable once committed), so delivery
    threads in this process need not read them back."""

    def __init__(self, size: int = 5000):
        self.size = size
        self._docs: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, doc: dict[str, Any]) -> None:
        with self._lock:
            self._docs[doc["_id"]] = doc
            while len(self._docs) > self.size:
                self._docs.popitem(last=False)

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            return self._docs.get(key)


class FreshCache:
    """Delivery-time answers (subscriber state, care-team membership) reused for at most
    `ttl`, and dropped at once when this process's dispatcher handles a change that could
    alter them; other processes' changes are seen within `ttl`."""

    def __init__(self, ttl: timedelta, clock: Callable[[], datetime]):
        self.ttl = ttl
        self.clock = clock
        self._values: dict[Any, tuple[Any, datetime]] = {}
        self._lock = threading.Lock()

    def get(self, key: Any, compute: Callable[[], Any]) -> Any:
        now = self.clock()
        with self._lock:
            found = self._values.get(key)
        if found is not None and now - found[1] < self.ttl:
            return found[0]
        value = compute()
        with self._lock:
            self._values[key] = (value, now)
        return value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()


class Dispatcher:
    def __init__(
        self,
        outbox: OutboxStore,
        deliveries: DeliveryStore,
        leases: LeaseStore,
        fanout: FanOut,
        resources: ResourceService,
        owner: str,
        lease_duration: timedelta,
        clock: Callable[[], datetime],
        events: EventCache,
        answers: FreshCache,
        on_enqueued: Callable[[], None] = lambda: None,
        sockets: SocketStore | None = None,
        reactions: ReactionQueue | None = None,
    ):
        self.outbox = outbox
        self.deliveries = deliveries
        self.leases = leases
        self.fanout = fanout
        self.resources = resources
        self.owner = owner
        self.lease_duration = lease_duration
        self.clock = clock
        self.events = events
        self.answers = answers
        self.on_enqueued = on_enqueued
        self.sockets = sockets
        self.reactions = reactions
        self.lease: Lease | None = None
        self._pool = ThreadPoolExecutor(8, thread_name_prefix="dispatch-io")
        self._not_before: dict[str, datetime] = {}
        self._failures: dict[str, int] = {}
        self._switched_off: set[str] = set()
        self._pruned = clock() - PRUNE_EVERY
        self._swept = clock()

    def run(self, stop: threading.Event, poll_s: float) -> None:
        while not stop.is_set():
            try:
                handled = self.run_once(stop)
            except PyMongoError as error:
                log.warning("dispatcher: database error, retrying: %s", error)
                handled = 0
                stop.wait(1.0)
            if not handled:
                stop.wait(poll_s)
        if self.lease is not None:
            self.leases.release(self.lease)
            self.lease = None
        self._pool.shutdown()

    def holds_lease(self) -> bool:
        if self.lease is not None and self.clock() < self.lease.until - self.lease_duration / 2:
            return True
        if self.lease is not None and self.leases.renew(self.lease, self.lease_duration):
            return True
        self.lease = self.leases.acquire(LEASE_NAME, self.owner, self.lease_duration)
        if self.lease is not None:
            self.fanout.reset()  # another process may have handled events meanwhile
        return self.lease is not None

    def run_once(self, stop: threading.Event | None = None) -> int:
        """Handle every pending committed event; returns how many were handled."""
        if not self.holds_lease():
            return 0
        self._housekeeping()
        pending = self.outbox.pending()
        handled = 0
        for start in range(0, len(pending), BATCH):
            if (stop is not None and stop.is_set()) or not self.holds_lease():
                break
            handled += self._dispatch(pending[start : start + BATCH])
        return handled

    def _dispatch(self, docs: list[dict[str, Any]]) -> int:
        now = self.clock()
        due = [d for d in docs if self._not_before.get(d["_id"], now) <= now]
        committed = list(self._pool.map(self.outbox.committed, due))
        self._warm([d for d, ok in zip(due, committed, strict=True) if ok])
        ready: list[dict[str, Any]] = []
        deliveries: list[dict[str, Any]] = []
        for doc, ok in zip(due, committed, strict=True):
            if not ok:
                if now - doc["ts"] > ORPHAN_AGE:
                    self._not_before[doc["_id"]] = now + ORPHAN_RECHECK
                continue
            if doc["t"] in ROUTING_TYPES or doc["t"] == "Subscription":
                self.answers.clear()
            targets = self._targets(doc, now)
            if targets is None:
                continue
            event = ChangeEvent.from_history(doc)
            deliveries += [delivery_doc(event, t, now) for t in targets]
            ready.append(doc)
        for doc in ready:
            self.events.put(doc)
        self.deliveries.enqueue(deliveries)
        if self.reactions is not None:  # reaction jobs, keyed by event: repeats are harmless
            self.reactions.enqueue([ChangeEvent.from_history(d) for d in ready])
        list(self._pool.map(self.outbox.mark_published, [d["_id"] for d in ready]))
        if deliveries:
            self.on_enqueued()
        return len(ready)

    def _warm(self, docs: list[dict[str, Any]]) -> None:
        """Care-team routes of the batch's patients looked up concurrently up front (the
        fan-out below then finds them cached); a failure leaves it to the fan-out."""
        events = [ChangeEvent.from_history(d) for d in docs]  # a delete's resource is None
        try:
            self.fanout.warm(events, self._pool.map)
        except PyMongoError:
            raise
        except Exception:
            log.exception("dispatcher: looking up routes ahead")

    def _targets(self, doc: dict[str, Any], now: datetime) -> list[Target] | None:
        """Subscribers of one event; None to try again later."""
        key = doc["_id"]
        try:
            previous = self.outbox.previous_resource(doc) if doc.get("del") else None
            targets = self.fanout.targets(ChangeEvent.from_history(doc, previous))
        except PyMongoError:
            raise
        except Exception:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            log.exception("dispatcher: cannot fan out %s (attempt %d)", key, failures)
            if failures < POISON_LIMIT:
                self._not_before[key] = now + timedelta(seconds=2**failures)
                return None
            log.error("dispatcher: giving up on %s; no notifications for it", key)
            targets = []  # one bad event must not hold up everything behind it forever
        self._not_before.pop(key, None)
        self._failures.pop(key, None)
        return targets

    def _housekeeping(self) -> None:
        now = self.clock()
        if now - self._pruned >= PRUNE_EVERY:
            self._pruned = now
            self.deliveries.prune(now - RETENTION)
        if self.sockets is not None and now - self._swept >= SWEEP_EVERY:
            self._swept = now
            self.sockets.sweep()
        for resource in self.fanout.expired_subscriptions():
            version = (resource.get("meta") or {}).get("versionId")
            attempt = f"{resource['id']}/{version}"
            if attempt in self._switched_off:
                continue  # failed before; the cache is reloaded when it changes
            self._switched_off.add(attempt)
            try:
                self.resources.update(
                    "Subscription",
                    str(resource["id"]),
                    {**resource, "status": "off"},
                    if_match=f'W/"{version}"' if version else None,
                )
            except FhirError as error:
                log.warning("could not switch off ended Subscription/%s: %s", resource["id"], error)


def delivery_doc(event: ChangeEvent, target: Target, now: datetime) -> dict[str, Any]:
    return {
        "_id": delivery_key(target.subscriber, event.key),
        "sub": target.subscriber,
        "ev": event.key,
        "eid": event.event_id,
        "ts": event.timestamp,
        "t": event.resource_type,
        "rid": event.resource_id,
        "v": event.version,
        "op": event.operation,
        "pat": list(target.patients),
        "teams": list(target.care_teams),
        "st": PENDING,
        "n": 0,
        "queued": now,
    }
