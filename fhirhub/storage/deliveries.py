"""Per-subscriber delivery queues: one document per (subscriber, event).

A delivery is inserted by the dispatcher with a deterministic _id, so fanning an event out
twice (after a crash) cannot queue it twice. Afterwards only the holder of the subscriber's
lease writes it (FerretDB's guarded updates are not atomic, so no document has two
writers), except that a websocket delivery, once `ready`, is finished by the web
process(es) it was handed to (storage/websockets.py). Workers find work by one scan of
what is pending: no wake-up records to keep consistent, and with vacuum keeping up the scan
costs as much as the work in flight.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database
from pymongo.errors import BulkWriteError

DELIVERIES = "deliveries"

PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"  # dead-lettered: gave up after the maximum attempts or a permanent failure
SKIPPED = "skipped"  # not sent: subscriber inactive, filtered, or no longer on the care team
# Websocket Subscriptions: handed by the worker to the web process(es) holding a bound socket
# (storage/websockets.py), which ping and then record delivered (or skipped).
READY = "ready"
STATES = (PENDING, DELIVERED, DEAD, SKIPPED, READY)
COUNT_ORDER = (DELIVERED, DEAD, SKIPPED, READY, PENDING)


def delivery_key(subscriber: str, event_key: str) -> str:
    return f"{subscriber}|{event_key}"


class DeliveryStore:
    def __init__(self, db: Database):
        self.deliveries = db[DELIVERIES]

    def ensure_indexes(self) -> None:
        self.deliveries.create_index(
            [("sub", ASCENDING), ("st", ASCENDING), ("ts", ASCENDING)], name="queue"
        )

    # -- dispatcher side -------------------------------------------------------------------

    def enqueue(self, deliveries: list[dict[str, Any]]) -> None:
        if deliveries:
            _insert_ignoring_duplicates(self.deliveries, deliveries)

    # -- delivery side (lease holder of the subscriber only) -------------------------------

    def due(self) -> dict[str, dict[str, Any]]:
        """The head (oldest pending delivery) of every non-empty queue, by subscriber."""
        heads: dict[str, dict[str, Any]] = {}
        fields = {"sub": 1, "ts": 1, "ev": 1, "next": 1}
        for doc in self.deliveries.find({"st": PENDING}, fields, batch_size=100_000):
            head = heads.get(doc["sub"])
            if head is None or (doc["ts"], doc["ev"]) < (head["ts"], head["ev"]):
                heads[doc["sub"]] = doc
        return heads

    def pending(self, subscriber: str, limit: int) -> list[dict[str, Any]]:
        cursor = (
            self.deliveries.find({"sub": subscriber, "st": PENDING})
            .sort([("ts", ASCENDING), ("ev", ASCENDING)])
            .limit(limit)
        )
        return list(cursor)

    def finish(self, delivery_id: str, state: str, fields: dict[str, Any]) -> None:
        self.deliveries.update_one({"_id": delivery_id}, {"$set": {"st": state, **fields}})

    def finish_if(self, delivery_id: str, current: str, state: str, fields: dict[str, Any]) -> None:
        """Only while still in `current` (a websocket delivery another process has recorded
        as delivered must not be turned back into skipped)."""
        query = {"_id": delivery_id, "st": current}
        self.deliveries.update_one(query, {"$set": {"st": state, **fields}})

    def ready_before(self, before: datetime) -> list[str]:
        query = {"st": READY, "at": {"$lt": before}}
        return [d["_id"] for d in self.deliveries.find(query, {"_id": 1})]

    def retry_later(self, delivery_id: str, fields: dict[str, Any]) -> None:
        self.deliveries.update_one({"_id": delivery_id}, {"$set": fields})

    def prune(self, before: datetime) -> int:
        """Forget finished deliveries last touched before `before` (dead letters stay)."""
        removed = 0
        for state in (DELIVERED, SKIPPED, READY):
            query = {"st": state, "at": {"$lt": before}}
            removed += self.deliveries.delete_many(query).deleted_count
        return removed

    # -- queries ---------------------------------------------------------------------------

    def counts(self, subscriber: str) -> dict[str, int]:
        # One count per state is no snapshot. Later states are counted first: a delivery
        # only moves forward (pending -> ready -> delivered, skipped or dead), so one that
        # moves meanwhile is counted at most once; pending first counted it twice (seen as a
        # flaky $status test: pending 1 and skipped 1 for a single delivery).
        found = {
            s: self.deliveries.count_documents({"sub": subscriber, "st": s}) for s in COUNT_ORDER
        }
        return {s: found[s] for s in STATES}

    def recent(self, subscriber: str, limit: int, state: str | None = None) -> list[dict[str, Any]]:
        query: dict[str, Any] = {"sub": subscriber}
        if state:
            query["st"] = state
        cursor = (
            self.deliveries.find(query).sort([("ts", DESCENDING), ("ev", DESCENDING)]).limit(limit)
        )
        return list(cursor)


def _insert_ignoring_duplicates(collection: Any, docs: list[dict[str, Any]]) -> None:
    try:
        collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        others = [e for e in exc.details.get("writeErrors", []) if e.get("code") != 11000]
        if others:
            raise
