"""Time-bounded exclusive leases for the notification worker, built on unique inserts.

FerretDB 1.24 evaluates update filters in Go and writes documents back afterwards, so a
guarded update (`{_id, owner: None}` -> owner) or find_one_and_update is not atomic: in a
16-thread race several callers "win" (measured). Inserting a document whose _id is taken is
atomic (a PostgreSQL unique index), so a lease is a chain of generations `name#1`, `name#2`,
... and taking over means inserting the next generation: exactly one contender succeeds.
Only the holder ever updates its own generation (to renew or release), so no document has
two concurrent writers.

Safety relies on clocks agreeing within RENEW_MARGIN: the holder stops acting once less
than the margin remains, and others take over only after `until` has passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from fhirhub.storage.store import Clock, utc_now_ms

LEASES = "worker_leases"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Lease:
    name: str
    generation: int
    owner: str
    until: datetime

    @property
    def key(self) -> str:
        return f"{self.name}#{self.generation}"


class LeaseStore:
    def __init__(self, db: Database, clock: Clock = utc_now_ms):
        self.coll = db[LEASES]
        self.clock = clock

    def ensure_indexes(self) -> None:
        self.coll.create_index([("name", ASCENDING)], name="lease_name")

    def current(self, name: str) -> dict[str, Any] | None:
        docs = list(self.coll.find({"name": name}, {"gen": 1, "owner": 1, "until": 1}))
        return max(docs, key=lambda d: d["gen"]) if docs else None

    def acquire(self, name: str, owner: str, duration: timedelta) -> Lease | None:
        """Take the lease if it is free or expired; None if someone else holds it."""
        current = self.current(name)
        now = self.clock()
        if current is not None and current["until"] > now and current["owner"] != owner:
            return None
        generation = (current["gen"] if current else 0) + 1
        lease = Lease(name, generation, owner, now + duration)
        try:
            self.coll.insert_one(
                {
                    "_id": lease.key,
                    "name": name,
                    "gen": generation,
                    "owner": owner,
                    "until": lease.until,
                }
            )
        except DuplicateKeyError:
            return None
        if current is not None:
            self.coll.delete_many({"name": name, "gen": {"$lt": generation}})
        return lease

    def renew(self, lease: Lease, duration: timedelta) -> bool:
        """Extend the lease; False when it may already belong to someone else."""
        now = self.clock()
        if now >= lease.until - renew_margin(duration):
            return False
        until = now + duration
        if self.coll.update_one({"_id": lease.key}, {"$set": {"until": until}}).matched_count != 1:
            return False
        if self.coll.find_one({"_id": f"{lease.name}#{lease.generation + 1}"}, {"_id": 1}):
            return False
        lease.until = until
        return True

    def valid(self, lease: Lease, duration: timedelta) -> bool:
        return self.clock() < lease.until - renew_margin(duration)

    def release(self, lease: Lease) -> None:
        self.coll.update_one({"_id": lease.key}, {"$set": {"until": EPOCH}})


def renew_margin(duration: timedelta) -> timedelta:
    return min(duration / 4, timedelta(seconds=5))
