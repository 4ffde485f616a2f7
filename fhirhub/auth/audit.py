"""AuditEvents for every request under /fhir and every authorization-server event: who,
what, when, outcome.

Requests only append a compact record (fhirhub/api/audit_render.py turns it into the
AuditEvent when read) to an in-process queue; a background thread writes batches with one
insert_many, so auditing adds microseconds, not a database round trip, to each request.
Events go to their own collection (not the resource store): they must not feed the
notification outbox or history, and they are never edited. A process that is killed
outright loses at most the last half second of events; a normal exit flushes them.
"""

from __future__ import annotations

import atexit
import logging
import queue
import secrets
import threading
import time
from datetime import UTC, datetime
from typing import Any

from pymongo import DESCENDING
from pymongo.database import Database
from pymongo.errors import PyMongoError

log = logging.getLogger(__name__)

COLLECTION = "audit_events"
FLUSH_SECONDS = 0.5
LINGER_SECONDS = 0.25
BATCH = 500
QUEUE_LIMIT = 50_000

Event = dict[str, Any]


class AuditLog:
    def __init__(self, db: Database):
        self.collection = db[COLLECTION]
        self._queue: queue.Queue[Event | None] = queue.Queue(QUEUE_LIMIT)
        self._idle = threading.Event()
        self._idle.set()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def record(self, event: Event) -> None:
        self._start()
        self._idle.clear()
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            # Never block a clinical request on auditing; say so loudly instead.
            log.error("audit queue full: dropped an AuditEvent for %s", event.get("path"))

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until everything recorded so far is written (tests, shutdown)."""
        if self._thread is not None:
            self._queue.put(None)  # wakes the writer at once
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
        with self._lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="fhirhub-audit", daemon=True)
                thread.start()
                atexit.register(self.flush)
                self._thread = thread

    def _run(self) -> None:
        while True:
            batch: list[Event] = []
            try:
                item = self._queue.get(timeout=FLUSH_SECONDS)
                if item is not None:
                    batch.append(item)
                    # Linger for more: one insert per request would cost the database as
                    # much as the request itself; a flush (None) ends the wait at once.
                    deadline = time.monotonic() + LINGER_SECONDS
                    while len(batch) < BATCH:
                        item = self._queue.get(timeout=max(deadline - time.monotonic(), 0))
                        if item is None:
                            break
                        batch.append(item)
            except queue.Empty:
                pass
            if batch:
                self._write(batch)
            if self._queue.empty():
                self._idle.set()

    def _write(self, batch: list[Event]) -> None:
        try:
            self.collection.insert_many(batch, ordered=False)
        except PyMongoError as exc:
            log.error("could not write %d AuditEvents: %s", len(batch), exc)


def now() -> datetime:
    return datetime.now(UTC)
