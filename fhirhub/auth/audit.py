"""AuditEvents for every request under /fhir and every authorization-server event: who,
what, when, outcome.

Requests only append a compact record (fhirhub/api/audit/render.py turns it into the
AuditEvent when read) to an in-process queue; a background thread writes batches with one
insert_many, so auditing adds microseconds, not a database round trip, to each request.
Events go to their own collection (not the resource store): they must not feed the
notification outbox or history, and they are never edited. A process that is killed
outright loses at most the last quarter second of events; a normal exit flushes them.
"""

from __future__ import annotations

import atexit
import logging
import secrets
import threading
from datetime import UTC, datetime
from typing import Any

from pymongo import DESCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError, PyMongoError

log = logging.getLogger(__name__)

COLLECTION = "audit_events"
LINGER_SECONDS = 0.25
BATCH = 500
QUEUE_LIMIT = 50_000

Event = dict[str, Any]


class AuditLog:
    def __init__(self, db: Database):
        self.collection = db[COLLECTION]
        self._pending: list[Event] = []
        self._lock = threading.Lock()  # guards _pending and the idle/pending transition
        self._idle = threading.Event()
        self._idle.set()
        self._wake = threading.Event()  # set only by flush(): write now
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def record(self, event: Event) -> None:
        # An append under a lock, no wake-up: the writer looks every LINGER_SECONDS. Waking
        # it on each request (a queue.put) cost a thread switch per request (~5% of a read).
        self._start()
        with self._lock:
            if len(self._pending) >= QUEUE_LIMIT:
                # Never block a clinical request on auditing; say so loudly instead.
                log.error("audit queue full: dropped an AuditEvent for %s", event.get("path"))
                return
            self._pending.append(event)
            self._idle.clear()

    def record_once(self, event: Event) -> bool:
        """Write one event now, keyed by its _id (derived from what it records, so a
        repeated worker job adds nothing). False: it was recorded before."""
        try:
            self.collection.insert_one(event)
        except DuplicateKeyError:
            return False
        return True

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until everything recorded so far is written (tests, shutdown)."""
        if self._thread is not None:
            self._wake.set()
            self._idle.wait(timeout)

    def close(self) -> None:
        self.flush()

    def search(self, conditions: dict[str, Any], before: str | None, count: int) -> list[Event]:
        query = dict(conditions)
        if before:
            query = {"$and": [conditions, {"_id": {"$lt": before}}]}
        return list(self.collection.find(query, sort=[("_id", DESCENDING)], limit=count))

    @staticmethod
    def new_id(moment: datetime) -> str:
        # Sorts by time, so paging newest-first is a plain _id range.
        return f"{int(moment.timestamp() * 1000):013d}-{secrets.token_hex(6)}"

    # -- the writer thread --------------------------------------------------------------------

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="fhirhub-audit", daemon=True)
                thread.start()
                atexit.register(self.flush)
                self._thread = thread

    def _run(self) -> None:
        while True:
            # Linger: one insert per request would cost the database as much as the request
            # itself. A flush ends the wait at once.
            self._wake.wait(LINGER_SECONDS)
            self._wake.clear()
            while True:
                with self._lock:
                    batch, self._pending[:BATCH] = self._pending[:BATCH], []
                    if not batch:
                        self._idle.set()
                        break
                self._write(batch)

    def _write(self, batch: list[Event]) -> None:
        try:
            self.collection.insert_many(batch, ordered=False)
        except PyMongoError as exc:
            log.error("could not write %d AuditEvents: %s", len(batch), exc)


def now() -> datetime:
    return datetime.now(UTC)
