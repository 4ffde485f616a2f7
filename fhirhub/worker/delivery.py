"""Delivery sessions: one worker thread drains one subscriber's queue under its lease.

Per-subscriber order: deliveries go out oldest first and a failing one blocks those behind
it (retried with exponential backoff) until it succeeds or is dead-lettered; one the
receiver keeps refusing while it accepts the events behind it is dead-lettered alone
(worker/retries.py says which failure means what). Before each send the delivery is
checked again (worker/delivery_checks.py: subscriber state, care-team membership, the
Subscription owner's access) and a changed address must have answered its verification
ping (worker/verification.py). A send starts only while the lease has more than the
timeout left, so another worker can take the queue over only after that send has finished
or its process has died; the only duplicate is a resend after a crash between send and
record (receivers de-duplicate on X-Fhirhub-Event-Id).

Websocket Subscriptions take the same path up to the send: instead of calling out, the
delivery is handed to the web processes with a socket bound to the Subscription, or skipped
when there is none (R4 websocket has no replay), so it never blocks the queue.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from fhirhub.storage.deliveries import DEAD, DELIVERED, SKIPPED, DeliveryStore
from fhirhub.storage.delivery_leases import Lease, LeaseStore
from fhirhub.storage.outbox import OutboxStore
from fhirhub.storage.websockets import SocketStore
from fhirhub.subscriptions.events import ChangeEvent
from fhirhub.subscriptions.model import WEBSOCKET
from fhirhub.subscriptions.payloads import build_notification, care_team_bundle
from fhirhub.subscriptions.routing import CareTeamRouter, Reader
from fhirhub.worker.delivery_checks import DeliveryChecks, Session
from fhirhub.worker.dispatcher import EventCache, FreshCache
from fhirhub.worker.outcomes import DeadLetters
from fhirhub.worker.owner_access import OwnerAccess
from fhirhub.worker.retries import Next, RetryPolicy, decide
from fhirhub.worker.sender import Sender, SendResult
from fhirhub.worker.verification import AddressVerifier

log = logging.getLogger(__name__)

BATCH = 20
MAX_PER_SESSION = 200  # then give other queues a turn
NO_SOCKET = "no websocket is bound to this Subscription (R4 websocket has no replay)"


class Sent(enum.Enum):
    """What became of one delivery in a session."""

    DELIVERED = "delivered"
    PASSED = "passed"  # skipped, handed to a websocket, or dead-lettered: the queue goes on
    WAIT = "wait"  # a retry is scheduled; the queue waits for it
    SUSPECT = "suspect"  # refused too often: probe the deliveries behind it


class DeliveryAgent:
    def __init__(
        self,
        deliveries: DeliveryStore,
        leases: LeaseStore,
        outbox: OutboxStore,
        events: EventCache,
        answers: FreshCache,
        router: CareTeamRouter,
        read: Reader,
        sender: Callable[[], Sender],
        dead_letters: DeadLetters,
        retry: RetryPolicy,
        owner: str,
        lease_duration: timedelta,
        send_timeout: timedelta,
        base: str,
        clock: Callable[[], datetime],
        sockets: SocketStore | None = None,
        owner_access: OwnerAccess | None = None,
        verifier: AddressVerifier | None = None,
    ):
        self.checks = DeliveryChecks(answers, router, read, clock, owner_access)
        self.verifier = verifier
        self.deliveries = deliveries
        self.leases = leases
        self.outbox = outbox
        self.events = events
        self.answers = answers
        self.sender = sender
        self.dead_letters = dead_letters
        self.retry = retry
        self.owner = owner
        self.lease_duration = lease_duration
        self.send_timeout = send_timeout
        self.base = base
        self.clock = clock
        self.sockets = sockets
        # Queue leases are kept while a queue stays busy, so a steady trickle of events
        # to one subscriber does not pay a lease round trip each time.
        self._held: dict[str, tuple[Lease, datetime]] = {}
        self._lock = threading.Lock()

    def _lease(self, key: str) -> Lease | None:
        with self._lock:
            held = self._held.get(key)
        lease = held[0] if held else None
        now = self.clock()
        short = (
            lease is not None and lease.until - now - self.send_timeout < self.lease_duration / 4
        )
        if lease is not None and short and not self.leases.renew(lease, self.lease_duration):
            lease = None
        if lease is None:
            lease = self.leases.acquire(f"queue:{key}", self.owner, self.lease_duration)
        with self._lock:
            if lease is None:
                self._held.pop(key, None)
            else:
                self._held[key] = (lease, now)
        return lease

    def release_idle(self, idle: timedelta, busy: set[str]) -> None:
        cutoff = self.clock() - idle
        with self._lock:
            stale = [k for k, (_, used) in self._held.items() if used < cutoff and k not in busy]
            leases = [self._held.pop(k)[0] for k in stale]
        for lease in leases:
            self.leases.release(lease)

    def release_all(self) -> None:
        self.release_idle(timedelta(0), set())

    def drain(self, key: str, stop: threading.Event) -> bool:
        """Deliver what is due for one subscriber, oldest first, stopping at a delivery that
        must wait for a retry. False: another worker holds this queue."""
        lease = self._lease(key)
        if lease is None:
            return False
        session = Session(key)
        handled = 0
        while handled < MAX_PER_SESSION and not stop.is_set():
            batch = self.deliveries.pending(key, BATCH)  # fresh under the lease, never stale
            for index, delivery in enumerate(batch):
                if delivery.get("next") and delivery["next"] > self.clock():
                    return True
                if not self._keep(lease, key):
                    return True
                sent = self._deliver(delivery, session)
                handled += 1
                if sent is Sent.WAIT or stop.is_set():
                    return True
                if sent is Sent.SUSPECT:
                    if not self._probe(batch[index + 1 :], [delivery], session, lease):
                        return True
                    break  # suspects dead-lettered: read the queue again
            else:
                if len(batch) < BATCH:
                    return True  # anything queued since is found by the next scan
        return True

    def _keep(self, lease: Lease, key: str) -> bool:
        """Renew the lease when a send might outlast it; False once it is lost."""
        spare = lease.until - self.clock() - self.send_timeout
        if spare < self.lease_duration / 4 and not self.leases.renew(lease, self.lease_duration):
            with self._lock:
                self._held.pop(key, None)  # lost (or about to be): never reuse it
            return False
        return True

    def _probe(
        self,
        behind: list[dict[str, Any]],
        suspects: list[dict[str, Any]],
        session: Session,
        lease: Lease,
    ) -> bool:
        """Send the deliveries behind refused ones, whatever their retry time: the first one
        accepted shows the suspects were poison (dead-lettered, True: the queue moves on);
        a failure shows nothing, and the queue waits (False)."""
        for delivery in behind:
            if not self._keep(lease, session.key):
                return False
            sent = self._deliver(delivery, session)
            if sent is Sent.DELIVERED:
                for suspect in suspects:
                    self._poison(suspect, session, delivery)
                return True
            if sent is Sent.SUSPECT:
                suspects.append(delivery)
            elif sent is Sent.WAIT:
                return False
        return False

    def _poison(self, delivery: dict[str, Any], session: Session, accepted: dict[str, Any]) -> None:
        error = (
            f"{delivery.get('err') or 'refused'} ({delivery.get('nr', 0)} refusals) while the "
            f"receiver accepted a later event ({accepted['eid']})"
        )
        fields = {"err": error, "at": self.clock(), "by": self.owner}
        self.deliveries.finish(delivery["_id"], DEAD, fields)
        attempts = int(delivery.get("n", 0))
        self.dead_letters.record(session.key, delivery, attempts, error, disable=False)

    def _deliver(self, delivery: dict[str, Any], session: Session) -> Sent:
        """Send one delivery and record what became of it."""
        reason = self.checks.skip_reason(delivery, session)
        doc = (
            None if reason else self.events.get(delivery["ev"]) or self.outbox.load(delivery["ev"])
        )
        if not reason and doc is None:
            reason = f"{delivery['ev']} no longer exists"
        if not reason and doc and session.subscriber:
            reason = self.checks.owner_refusal(session.subscriber, doc)
        if reason or doc is None or session.subscriber is None:
            fields = {"err": reason, "at": self.clock(), "by": self.owner}
            self.deliveries.finish(delivery["_id"], SKIPPED, fields)
            return Sent.PASSED
        if session.subscriber.channel == WEBSOCKET:
            return self._hand_over(delivery, session.key)
        subscriber = session.subscriber
        refused = self.verifier.check(subscriber) if self.verifier is not None else None
        if refused is not None:  # a changed address must answer a verification ping first
            return self._record(delivery, session, refused)
        event = ChangeEvent.from_history(doc)
        attempts = int(delivery.get("n", 0)) + 1
        bundle = None
        if session.key.startswith("Endpoint/"):
            bundle = care_team_bundle(
                event,
                self.base,
                list(delivery.get("pat") or []),
                list(delivery.get("teams") or []),
                include_resource=not subscriber.id_only,
                now=self.clock(),
            )
        note = build_notification(subscriber, event, attempts, bundle)
        result = self.sender().send(subscriber.address, note.body, note.headers)
        return self._record(delivery, session, result)

    def _record(self, delivery: dict[str, Any], session: Session, result: SendResult) -> Sent:
        decision = decide(self.retry, delivery, result, self.clock())
        fields = {**decision.fields, "by": self.owner}
        if decision.next is Next.DELIVERED:
            self.deliveries.finish(delivery["_id"], DELIVERED, fields)
            return Sent.DELIVERED
        if decision.next in (Next.RETRY, Next.SUSPECT):
            self.deliveries.retry_later(delivery["_id"], fields)
            delivery.update(fields)  # a probe that proves it poison reports these
            return Sent.SUSPECT if decision.next is Next.SUSPECT else Sent.WAIT
        self.deliveries.finish(delivery["_id"], DEAD, fields)
        disable = decision.next is Next.DEAD_SUBSCRIBER
        self.dead_letters.record(session.key, delivery, fields["n"], result.error, disable=disable)
        if disable:
            self.answers.clear()  # the subscriber has probably just been set to error
            session.loaded = False
        return Sent.PASSED

    def _hand_over(self, delivery: dict[str, Any], key: str) -> Sent:
        """Websocket: owners are read fresh for every delivery, so a socket bound a moment
        ago gets the very next change."""
        owners = self.sockets.live_owners(key) if self.sockets is not None else []
        if owners and self.sockets is not None:
            self.sockets.hand_over(delivery, owners, self.owner)
        else:
            fields = {"err": NO_SOCKET, "at": self.clock(), "by": self.owner}
            self.deliveries.finish(delivery["_id"], SKIPPED, fields)
        return Sent.PASSED
