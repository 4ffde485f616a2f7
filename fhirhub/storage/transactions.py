"""All-or-nothing multi-resource writes without multi-document transactions.

Stage, then commit, with compensation: a transaction log record lists each write with the
version it replaced. History versions written under the record carry its id and stay
invisible (to vread, history and the outbox worker) while the record exists. Deleting the
record is the commit point. On failure, or when recovery finds a record left by a dead
process, every write is compensated (the prior current version restored, the transaction's
versions removed) and then the record is deleted.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from fhirhub.storage.documents import RESOURCES, TRANSACTIONS, VERSION_TYPE, StoredVersion
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
        except BaseException:
            compensate(self.store, self.id)
            raise
        self.log.delete_one({"_id": self.id})  # the commit point
        return results


def compensate(store: ResourceStore, txn_id: str) -> None:
    record = store.db[TRANSACTIONS].find_one({"_id": txn_id})
    if record is None:
        return
    for entry in reversed(record.get("w", [])):
        restored = store.restore(entry["t"], entry["rid"], entry["v"], entry["p"], txn_id)
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
    # Only version documents: a staged current document still here is no longer ours
    # (restore above put back or removed every one that was).
    store.db[RESOURCES].delete_many({"txn": txn_id, VERSION_TYPE: {"$exists": True}})
    store.db[TRANSACTIONS].delete_one({"_id": txn_id})


def recover(store: ResourceStore) -> int:
    """Finish transactions left behind by dead processes. Returns how many were handled."""
    cutoff = store.clock() - ABANDONED_AFTER
    handled = 0
    query: dict[str, Any] = {"ts": {"$lt": cutoff}}
    for record in list(store.db[TRANSACTIONS].find(query)):
        compensate(store, record["_id"])
        handled += 1
    return handled
