"""All-or-nothing multi-resource writes without multi-document transactions.

Stage, then commit, with compensation: a transaction record lists each write with the
version it replaced. Writes go to history as STAGED (invisible to vread, history and the
outbox worker). Flipping the record to committed is the commit point; after it the staged
versions are published. On failure, or when recovery finds a record left pending by a dead
process, every write is compensated (the prior current version restored, staged history
removed).
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from fhirhub.storage.documents import HISTORY, PUB_PENDING, PUB_STAGED, TRANSACTIONS, StoredVersion
from fhirhub.storage.store import PlannedWrite, ResourceStore

log = logging.getLogger(__name__)

ABANDONED_AFTER = timedelta(minutes=2)


class StagedTransaction:
    """Write a set of planned changes all-or-nothing."""

    def __init__(self, store: ResourceStore):
        self.store = store
        self.id = uuid.uuid4().hex
        self.log = store.db[TRANSACTIONS]

    def apply(self, plans: list[PlannedWrite]) -> list[StoredVersion]:
        entries = [
            {
                "t": p.resource_type,
                "rid": p.resource_id,
                "v": p.prior_version + 1,
                "p": p.prior_version,
            }
            for p in plans
        ]
        # The intent is logged before any write so a crash at any later point compensates.
        self.log.insert_one(
            {"_id": self.id, "state": "pending", "ts": self.store.clock(), "w": entries}
        )
        try:
            results = self.store.write_batch(plans, self.id)
            self.store._step("commit")
            self.log.update_one({"_id": self.id}, {"$set": {"state": "committed"}})
        except BaseException:
            compensate(self.store, self.id)
            raise
        publish(self.store, self.id)
        return results


def publish(store: ResourceStore, txn_id: str) -> None:
    store.db[HISTORY].update_many(
        {"txn": txn_id, "pub": PUB_STAGED}, {"$set": {"pub": PUB_PENDING}}
    )
    store.db[TRANSACTIONS].delete_one({"_id": txn_id})


def compensate(store: ResourceStore, txn_id: str) -> None:
    record = store.db[TRANSACTIONS].find_one({"_id": txn_id})
    if record is None:
        return
    for entry in reversed(record.get("w", [])):
        restored = store.restore(entry["t"], entry["rid"], entry["v"], entry["p"])
        if not restored:
            current = store.current(entry["t"], entry["rid"])
            if current is not None and current.version > entry["v"]:
                # Someone wrote on top of our staged version; their write wins.
                log.warning(
                    "transaction %s: %s/%s changed since; not restored",
                    txn_id,
                    entry["t"],
                    entry["rid"],
                )
    store.db[HISTORY].delete_many({"txn": txn_id, "pub": PUB_STAGED})
    store.db[TRANSACTIONS].delete_one({"_id": txn_id})


def recover(store: ResourceStore) -> int:
    """Finish transactions left behind by dead processes. Returns how many were handled."""
    cutoff = store.clock() - ABANDONED_AFTER
    handled = 0
    query: dict[str, Any] = {"ts": {"$lt": cutoff}}
    for record in list(store.db[TRANSACTIONS].find(query)):
        if record["state"] == "committed":
            publish(store, record["_id"])
        else:
            compensate(store, record["_id"])
        handled += 1
    return handled
