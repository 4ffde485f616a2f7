"""`fhirhub worker`: the dispatcher plus a pool of delivery threads in one process.

Any number of these may run against one database: the dispatcher lease keeps one fan-out
at a time and the per-subscriber leases keep each queue with one thread. Threads in this
process are woken directly when the dispatcher queues work; other processes poll.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from types import FrameType
from typing import Any

from fhirhub.fhir.errors import ConfigurationError, FhirError
from fhirhub.hub import Hub
from fhirhub.service.resources import ResourceService
from fhirhub.storage.address_checks import AddressChecks
from fhirhub.storage.deliveries import DeliveryStore
from fhirhub.storage.delivery_leases import LeaseStore
from fhirhub.storage.outbox import OutboxStore
from fhirhub.storage.store import utc_now_ms
from fhirhub.storage.websockets import SocketStore
from fhirhub.subscriptions.address_policy import AddressPolicy
from fhirhub.subscriptions.fanout import FanOut
from fhirhub.subscriptions.routing import CareTeamRouter, Reader
from fhirhub.timers.runner import TimerRunner
from fhirhub.worker.delivery import DeliveryAgent
from fhirhub.worker.dispatcher import Dispatcher, EventCache, FreshCache
from fhirhub.worker.outcomes import DeadLetters
from fhirhub.worker.owner_access import OwnerAccess
from fhirhub.worker.retries import RetryPolicy
from fhirhub.worker.sender import Sender
from fhirhub.worker.verification import AddressVerifier

log = logging.getLogger(__name__)

# httpx applies the timeout per phase (connect, write, read), so a send may take up to three.
PHASES = 3
# Delivery-time checks (subscriber active, still on the care team) may reuse an answer
# this old; the dispatcher in the same process drops them at once on relevant changes.
FRESHNESS = timedelta(seconds=1)
MIN_SCAN_S = 0.02
LINGER = timedelta(seconds=2)  # keep an idle queue's lease this long for the next event


def reader(resources: ResourceService) -> Reader:
    def read(resource_type: str, resource_id: str) -> dict[str, Any] | None:
        try:
            return resources.read(resource_type, resource_id).resource
        except FhirError:
            return None

    return read


class NotificationWorker:
    def __init__(self, hub: Hub, threads: int | None = None):
        settings = hub.settings
        timeout = timedelta(milliseconds=settings.notify_timeout_ms)
        self.lease = timedelta(milliseconds=settings.worker_lease_ms)
        if self.lease < timeout * (PHASES + 1):
            raise ConfigurationError(
                "FHIRHUB_WORKER_LEASE_MS must be at least 4 x FHIRHUB_NOTIFY_TIMEOUT_MS "
                "(a send must end well before its lease)"
            )
        self.threads = threads or settings.worker_threads
        self.poll_s = settings.worker_poll_ms / 1000
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.stop = threading.Event()
        self._wake = threading.Condition()
        self._inflight: set[str] = set()
        self._busy_until: dict[str, datetime] = {}
        self._next_scan = 0.0
        self._saturated = False
        self._local = threading.local()
        self._senders: list[Sender] = []
        self.policy = AddressPolicy.from_settings(settings)
        self.timeout_s = timeout.total_seconds()
        clock = utc_now_ms
        read = reader(hub.resources)
        router = CareTeamRouter(hub.search, read, settings.fhir_base)
        self.deliveries = DeliveryStore(hub.db)
        leases = LeaseStore(hub.db)
        outbox = OutboxStore(hub.db)
        events = EventCache()
        answers = FreshCache(FRESHNESS, clock)
        sockets = SocketStore(hub.db)
        self.dispatcher = Dispatcher(
            outbox,
            self.deliveries,
            leases,
            FanOut(hub.search, router, clock),
            hub.resources,
            self.owner,
            self.lease,
            clock,
            events,
            answers,
            on_enqueued=self._notify,
            sockets=sockets,
            reactions=hub.reaction_queue,
        )
        self.agent = DeliveryAgent(
            self.deliveries,
            leases,
            outbox,
            events,
            answers,
            router,
            read,
            self._sender,
            DeadLetters(hub.resources, hub.audit.collection.insert_one, clock),
            RetryPolicy(
                settings.notify_max_attempts,
                timedelta(milliseconds=settings.notify_retry_base_ms),
                timedelta(milliseconds=settings.notify_retry_max_ms),
                timedelta(milliseconds=settings.notify_retry_horizon_ms),
            ),
            self.owner,
            self.lease,
            timeout * PHASES,
            settings.fhir_base,
            clock,
            sockets,
            OwnerAccess(hub.auth.owner_policy, answers, outbox),
            AddressVerifier(AddressChecks(hub.db), self._sender, clock),
        )
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="notify")
        self._background: list[threading.Thread] = []
        # Durable timers (fhirhub/timers) and reactions run here too, beside notifications.
        self.timers = TimerRunner(
            hub.timer_store,
            hub.timer_kinds,
            self.owner,
            self.lease,
            settings.timer_threads,
            settings.timer_poll_ms / 1000,
        )
        hub.__dict__["timer_runner"] = self.timers  # local plans wake it at once
        _ = hub.channels  # outbound channel settings are checked at start

    def _sender(self) -> Sender:
        sender: Sender | None = getattr(self._local, "sender", None)
        if sender is None:
            sender = Sender(self.policy, self.timeout_s)
            self._local.sender = sender
            self._senders.append(sender)
        return sender

    def _notify(self) -> None:
        with self._wake:
            self._wake.notify_all()

    def start(self) -> None:
        self.timers.start()
        for name, target in (("dispatch", self._dispatch), ("schedule", self._schedule)):
            thread = threading.Thread(target=target, name=f"notify-{name}", daemon=True)
            thread.start()
            self._background.append(thread)

    def _dispatch(self) -> None:
        self.dispatcher.run(self.stop, self.poll_s)

    def _schedule(self) -> None:
        while not self.stop.is_set():
            try:
                held_back = self._submit_ready()
            except Exception:
                log.exception("notification scheduler")
                self.stop.wait(1.0)
                held_back = 0.0
            with self._wake:
                if held_back:
                    self._wake.wait(held_back)  # a wake-up arrived too soon after a scan
                else:
                    self._wake.wait(self.poll_s)

    def _submit_ready(self) -> float:
        """Scan and hand due queues to free threads; returns how long a rate-limited scan
        had to be put off (0 when it ran)."""
        self.agent.release_idle(LINGER, set(self._inflight))
        free = self.threads - len(self._inflight)
        now = utc_now_ms()
        if free <= 0:
            return 0.0
        if time.monotonic() < self._next_scan:
            return self._next_scan - time.monotonic()
        started = time.monotonic()
        heads = self.deliveries.due()
        # A scan costs what is pending; with a large backlog (a receiver down for long)
        # scan less often rather than spend the database on re-reading it.
        self._next_scan = time.monotonic() + max(MIN_SCAN_S, 4 * (time.monotonic() - started))
        ready = [
            key
            for key, head in heads.items()
            if (head.get("next") is None or head["next"] <= now)
            and key not in self._inflight
            and self._busy_until.get(key, now) <= now
        ]
        random.shuffle(ready)  # spread queues across processes
        self._saturated = len(ready) > free
        for key in ready[:free]:
            self._inflight.add(key)
            self._pool.submit(self._drain, key)
        return 0.0

    def _drain(self, key: str) -> None:
        try:
            if not self.agent.drain(key, self.stop):
                self._busy_until[key] = utc_now_ms() + timedelta(seconds=self.poll_s * 10)
        except Exception:
            log.exception("delivering to %s", key)
        finally:
            self._inflight.discard(key)
            if self._saturated:  # queues were left waiting for a free thread
                self._notify()

    def shutdown(self, timeout: float = 30.0) -> bool:
        """Stop, letting sends in flight finish; False if some did not within `timeout`
        (a database that stopped answering), whose leases then simply expire."""
        deadline = time.monotonic() + timeout
        self.stop.set()
        self._notify()
        timers_done = self.timers.shutdown(max(0.0, deadline - time.monotonic()))
        for thread in self._background:
            thread.join(max(0.0, deadline - time.monotonic()))
        while self._inflight and time.monotonic() < deadline:
            time.sleep(0.05)
        stuck = set(self._inflight)
        self._pool.shutdown(wait=not stuck, cancel_futures=True)
        self.agent.release_idle(timedelta(0), stuck)
        for sender in self._senders:
            sender.close()
        return timers_done and not stuck and not any(t.is_alive() for t in self._background)

    def run_until_signalled(self) -> None:
        def _on_signal(signum: int, frame: FrameType | None) -> None:
            if self.stop.is_set():
                os._exit(1)  # second Ctrl-C: do not wait for anything
            self.stop.set()

        signal.signal(signal.SIGINT, _on_signal)
        signal.signal(signal.SIGTERM, _on_signal)
        self.start()
        log.warning("notification worker %s running (%d threads)", self.owner, self.threads)
        while not self.stop.wait(0.5):
            pass
        if not self.shutdown():
            log.error("notification worker: deliveries still blocked at exit; leaving them")
            os._exit(1)  # blocked pool threads would otherwise keep the process alive
