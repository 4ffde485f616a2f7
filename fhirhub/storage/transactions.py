"""All-or-nothing multi-resource writes without multi-document transactions.

Stage, then commit, with compensation: a transaction log record lists each write with the
version it replaced. History versions written under the record carry its id and stay
invisible (to vread, history and the outbox worker) while the record exists. Deleting the
record is the commit point. On failure, or when recovery finds a record left by a dead
process, every write is compensated (the prior current version restored, the transaction's
versions removed) and then the record is deleted.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from concurrent.futures import Future, wait
from datetime import datetime, timedelta
from typing import Any

from fhirhub.storage.documents import RESOURCES, TRANSACTIONS, VERSION_TYPE, StoredVersion
from fhirhub.storage.store import Document, PlannedWrite, ResourceStore

log = logging.getLogger(__name__)

ABANDONED_AFTER = timedelta(minutes=2)


class StagedTransaction:
    """Write a set of planned changes all-or-nothing.

    `stage_ahead` lets the versions of new resources start going in while the caller is
    still validating the rest of the bundle (they stay invisible until the commit, so this
    changes nothing anyone can see; the current documents, which searches do see, are only
    written by `apply`, after every check). On a 250-entry Synthea bundle this hides the
    versions' insert time behind the Python work on the next entries."""

    def __init__(self, store: ResourceStore):
        self.store = store
        self.id = uuid.uuid4().hex
        self.log = store.db[TRANSACTIONS]
        self._moment: datetime | None = None
        self._logged = False
        # id(plan) -> (its current document, still to insert; what apply returns for it)
        self._ahead: dict[int, tuple[Document, StoredVersion]] = {}
        self._futures: list[Future[None]] = []

    def stage_ahead(self, plans: list[PlannedWrite]) -> None:
        """Start inserting the versions of these creates (prior version 0) now."""
        assert all(p.prior_version == 0 for p in plans)
        if not self._logged:
            # The record exists before any version does: a crash from here on compensates.
            self.log.insert_one(self._record([]))
            self._logged = True
        staged = self.store.staged_docs(plans, self.id, self.moment())
        for plan, current, result in zip(plans, staged.creates, staged.results, strict=True):
            self._ahead[id(plan)] = (current, result)
        self._futures.append(self.store.insert_ahead(staged.versions))

    def apply(self, plans: list[PlannedWrite]) -> list[StoredVersion]:
        """Write every plan (those staged ahead included) and commit; results in order."""
        entries = [
            {
                "t": p.resource_type,
                "rid": p.resource_id,
                "v": p.prior_version + 1,
                "p": p.prior_version,
            }
            for p in plans
        ]
        try:
            # The intent is logged before any current document is written, so a crash at
            # any later point compensates.
            if self._logged:
                self.log.update_one({"_id": self.id}, {"$set": {"w": entries}})
            else:
                self.log.insert_one(self._record(entries))
                self._logged = True
            rest = [p for p in plans if id(p) not in self._ahead]
            staged = self.store.staged_docs(rest, self.id, self.moment())
            self._wait_ahead()
            by_plan = dict(zip(map(id, rest), staged.results, strict=True))
            by_plan.update((key, result) for key, (_, result) in self._ahead.items())
            creates = [current for current, _ in self._ahead.values()] + staged.creates
            self.store.write_staged(staged.versions, creates, staged.replaces)
            self.store._step("commit")
        except BaseException:
            self.abort()
            raise
        self.log.delete_one({"_id": self.id})  # the commit point
        return [by_plan[id(p)] for p in plans]

    def abort(self) -> None:
        """Undo whatever was staged (also when the caller fails before `apply`)."""
        if not self._logged:
            return
        with contextlib.suppress(Exception):  # compensation removes whatever did go in
            self._wait_ahead()
        compensate(self.store, self.id)

    def _wait_ahead(self) -> None:
        futures, self._futures = self._futures, []
        wait(futures)  # nothing of ours may still be writing once this returns
        for future in futures:
            future.result()

    def moment(self) -> datetime:
        """One lastUpdated for the whole transaction, taken at its first write (not when
        planning began), so it trails the commit by as little as possible."""
        if self._moment is None:
            self._moment = self.store.clock()
        return self._moment

    def _record(self, entries: list[dict[str, Any]]) -> Document:
        return {"_id": self.id, "state": "pending", "ts": self.moment(), "w": entries}


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
