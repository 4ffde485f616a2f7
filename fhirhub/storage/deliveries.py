"""Per-subscriber delivery queues: one document per (subscriber, event), plus ready tokens.

A delivery is inserted by the dispatcher with a deterministic _id, so fanning an event out
twice (after a crash) cannot queue it twice. Afterwards only the holder of the subscriber's
lease writes it. A ready token (`notify_ready`, _id = subscriber) says "this queue may have
work"; the dispatcher inserts it after the deliveries, and the holder deletes it only after
seeing the queue empty and re-checks afterwards, so no wake-up is lost without any
multi-writer update (FerretDB's are not atomic).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

DELIVERIES = "deliveries"
READY = "notify_ready"

PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"  # dead-lettered: gave up after the maximum attempts or a permanent failure
SKIPPED = "skipped"  # not sent: subscriber inactive, filtered, or no longer on the care team
STATES = (PENDING, DELIVERED, DEAD, SKIPPED)


def delivery_key(subscriber: str, event_key: str) -> str:
    return f"{subscriber}|{event_key}"


class DeliveryStore:
    def __init__(self, db: Database):
        self.deliveries = db[DELIVERIES]
        self.ready = db[READY]

    def ensure_indexes(self) -> None:
        self.deliveries.create_index(
            [("sub", ASCENDING), ("st", ASCENDING), ("ts", ASCENDING)], name="queue"
        )
        self.ready.create_index([("at", ASCENDING)], name="ready_at")  # creates the collection

    # -- dispatcher side -------------------------------------------------------------------

    def enqueue(self, deliveries: list[dict[str, Any]], now: datetime) -> None:
        if not deliveries:
            return
        _insert_ignoring_duplicates(self.deliveries, deliveries)
        # Tokens strictly after the deliveries: a holder that sees the token gone and then
        # an empty queue can rely on any later delivery bringing its own token.
        subscribers = sorted({d["sub"] for d in deliveries})
        _insert_ignoring_duplicates(self.ready, [{"_id": s, "at": now} for s in subscribers])

    # -- delivery side (lease holder of the subscriber only) -------------------------------

    def ready_tokens(self) -> list[tuple[str, datetime]]:
        return [(d["_id"], d["at"]) for d in self.ready.find({})]

    def defer(self, subscriber: str, at: datetime) -> None:
        try:
            self.ready.update_one({"_id": subscriber}, {"$set": {"at": at}}, upsert=True)
        except DuplicateKeyError:
            # FerretDB upserts as find-then-insert: the dispatcher's insert came in between.
            self.ready.update_one({"_id": subscriber}, {"$set": {"at": at}})

    def clear_token(self, subscriber: str) -> None:
        self.ready.delete_one({"_id": subscriber})

    def pending(self, subscriber: str, limit: int) -> list[dict[str, Any]]:
        cursor = (
            self.deliveries.find({"sub": subscriber, "st": PENDING})
            .sort([("ts", ASCENDING), ("ev", ASCENDING)])
            .limit(limit)
        )
        return list(cursor)

    def finish(self, delivery_id: str, state: str, fields: dict[str, Any]) -> None:
        self.deliveries.update_one({"_id": delivery_id}, {"$set": {"st": state, **fields}})

    def retry_later(self, delivery_id: str, fields: dict[str, Any]) -> None:
        self.deliveries.update_one({"_id": delivery_id}, {"$set": fields})

    def prune(self, before: datetime) -> int:
        """Forget finished deliveries last touched before `before` (dead letters stay)."""
        removed = 0
        for state in (DELIVERED, SKIPPED):
            query = {"st": state, "at": {"$lt": before}}
            removed += self.deliveries.delete_many(query).deleted_count
        return removed

    # -- queries ---------------------------------------------------------------------------

    def counts(self, subscriber: str) -> dict[str, int]:
        return {s: self.deliveries.count_documents({"sub": subscriber, "st": s}) for s in STATES}

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
