"""The outbox side of the version documents: committed versions waiting for the dispatcher.

Each version document is written with `pub: PUB_PENDING` in the same insert as the version
itself. Only the holder of the dispatcher lease moves it to PUB_DONE, after its deliveries
are queued, so a crash anywhere in between means the event is fanned out again (the
deliveries' deterministic keys make that idempotent) and never lost.

A pending document is not necessarily committed: a transaction's versions wait for the
log record to disappear (and vanish if compensated); a plain write inserts its version
before swapping the current document and deletes it again if it loses that race.
"""

from __future__ import annotations

from typing import Any

from pymongo.database import Database

from fhirhub.storage.documents import (
    PUB_DONE,
    PUB_PENDING,
    RESOURCES,
    TRANSACTIONS,
    decode_resource,
    resource_key,
    version_key,
    version_view,
)

SCAN_BATCH = 100_000


class OutboxStore:
    def __init__(self, db: Database):
        self.resources = db[RESOURCES]
        self.history = self.resources  # version documents (see documents.py)
        self.transactions = db[TRANSACTIONS]

    def pending(self) -> list[dict[str, Any]]:
        """Every pending event, oldest first.

        FerretDB pushes neither the sort nor a limit down with this filter, and sorts in Go
        slowly (3.5 s for 20k documents against 0.5 s unsorted, measured), so all pending
        documents are fetched in one round trip and ordered here; normally only a few."""
        # One batch: no FerretDB cursor left open between round trips.
        found = self.history.find({"pub": PUB_PENDING}, batch_size=SCAN_BATCH)
        docs = [version_view(d) for d in found]
        docs.sort(key=lambda d: (d["ts"], d["_id"]))
        return docs

    def load(self, key: str) -> dict[str, Any] | None:
        doc = self.history.find_one({"_id": key})
        return version_view(doc) if doc is not None else None

    def committed(self, doc: dict[str, Any]) -> bool:
        txn = doc.get("txn")
        if txn is not None:
            if self.transactions.find_one({"_id": txn}, {"_id": 1}) is not None:
                return False
            # Compensation deletes the versions before the log record, so a version that
            # still exists once the record is gone was committed.
            return self.history.find_one({"_id": doc["_id"]}, {"_id": 1}) is not None
        current = self.resources.find_one({"_id": resource_key(doc["t"], doc["rid"])}, {"v": 1})
        return current is not None and current["v"] >= doc["v"]

    def previous_resource(self, doc: dict[str, Any]) -> dict[str, Any] | None:
        """The last live version before `doc` (what a delete removed)."""
        for version in range(doc["v"] - 1, 0, -1):
            prior = self.history.find_one({"_id": version_key(doc["t"], doc["rid"], version)})
            resource = decode_resource(prior.get("res")) if prior is not None else None
            if resource is not None:
                return resource
            if prior is not None:
                return None  # deleted before as well: nothing was live
        return None

    def mark_published(self, key: str) -> None:
        # One update per event: FerretDB 1.24 cannot push `$in` down, and a bulk_write of
        # many updates hung it outright (all its PostgreSQL connections idle, no reply).
        self.history.update_one({"_id": key, "pub": PUB_PENDING}, {"$set": {"pub": PUB_DONE}})

    def publish_all_pending(self) -> int:
        """Mark every pending event done without notifying (bulk-loaded seed data)."""
        return self.history.update_many(
            {"pub": PUB_PENDING}, {"$set": {"pub": PUB_DONE}}
        ).modified_count
