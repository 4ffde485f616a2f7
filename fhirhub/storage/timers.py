"""Durable timer jobs: fixed-schema records (mongoengine documents, stored with pymongo).

Two collections, each document with a single kind of writer, because FerretDB 1.24's
guarded updates are not atomic (a compare-and-set can be lost):
- `timer_jobs`: one document per plan (`_id` "key@plan"). Planners only ever insert one;
  afterwards only the worker holding its lease (storage/delivery_leases.py chain, in
  `timer_leases`) writes it: state, attempts, retry time.
- `timer_keys`: per key, which plan is live (None once cancelled). Only planners write it
  (last writer wins); the worker only reads it, so re-planning a key supersedes the old
  plan and cancelling withdraws it without touching the job a worker may be running.

Jobs are found by equality only (FerretDB pushes nothing else down): pending jobs by the
minute they are due (`dm`), so the per-poll scan reads the jobs of the current minutes and
its cost does not grow with the jobs planned for later; a full scan of pending jobs runs
at start and now and then to catch up after an outage.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import mongoengine as me
from pymongo import ASCENDING
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from fhirhub.storage.delivery_leases import Lease, LeaseStore
from fhirhub.storage.store import Clock, utc_now_ms

JOBS = "timer_jobs"
KEYS = "timer_keys"
LEASES = "timer_leases"

PENDING = "pending"
DONE = "done"
SKIPPED = "skipped"  # too late (deadline passed) or the handler decided not to act
FAILED = "failed"  # gave up after its attempts
SUPERSEDED = "superseded"  # re-planned or cancelled before it ran
FINAL = (DONE, SKIPPED, FAILED, SUPERSEDED)
STATES = (PENDING, *FINAL)
ONCE = "once"  # the plan id of jobs planned at most once per key (reactions)
EPOCH_MINUTE = datetime(1970, 1, 1, tzinfo=UTC)


class TimerJob(me.Document):
    id = me.StringField(primary_key=True)
    key = me.StringField(required=True, max_length=1000)
    plan = me.StringField(required=True)
    kind = me.StringField(required=True, max_length=200)
    due = me.DateTimeField(required=True)
    deadline = me.DateTimeField()
    payload = me.DictField()
    st = me.StringField(required=True, choices=STATES, default=PENDING)
    n = me.IntField(default=0, min_value=0)  # attempts so far
    next = me.DateTimeField()  # retry time, after a failed attempt
    dm = me.IntField(required=True)  # the minute (since 1970) it is due, for the scan
    planned = me.DateTimeField(required=True)
    at = me.DateTimeField()  # finished at
    err = me.StringField()
    note = me.StringField()
    by = me.StringField()
    meta = {"collection": JOBS, "auto_create_index": False}


class TimerKey(me.Document):
    id = me.StringField(primary_key=True)
    plan = me.StringField(null=True)  # the live plan; None: cancelled
    at = me.DateTimeField(required=True)
    meta = {"collection": KEYS, "auto_create_index": False}


@dataclass(frozen=True)
class Job:
    """A job as the runner and handlers see it."""

    id: str
    key: str
    plan: str
    kind: str
    due: datetime
    deadline: datetime | None
    payload: dict[str, Any]
    state: str
    attempts: int
    next: datetime | None

    @property
    def when(self) -> datetime:
        return self.next or self.due

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Job:
        record = TimerJob._from_son(doc)
        return cls(
            id=record.id,
            key=record.key,
            plan=record.plan,
            kind=record.kind,
            due=_aware(record.due),
            deadline=_aware(record.deadline) if record.deadline else None,
            payload=dict(record.payload or {}),
            state=record.st,
            attempts=record.n or 0,
            next=_aware(record.next) if record.next else None,
        )


def minute_of(moment: datetime) -> int:
    return int((moment - EPOCH_MINUTE).total_seconds() // 60)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class TimerLeases(LeaseStore):
    """The lease chain of delivery_leases.py in a collection of its own, which can be
    pruned as jobs finish."""

    def __init__(self, db: Database, clock: Clock = utc_now_ms):
        super().__init__(db, clock)
        self.coll = db[LEASES]

    def drop(self, lease: Lease) -> None:
        """Forget a finished job's lease (its job is final: any later claimer reads that)."""
        self.coll.delete_many({"name": lease.name})


class TimerStore:
    def __init__(self, db: Database, clock: Clock = utc_now_ms):
        self.jobs = db[JOBS]
        self.keys = db[KEYS]
        self.clock = clock
        self.leases = TimerLeases(db, clock)

    def ensure_indexes(self) -> None:
        self.jobs.create_index([("st", ASCENDING), ("dm", ASCENDING)], name="timer_due")
        self.jobs.create_index([("key", ASCENDING)], name="timer_key")
        # Creates the collection at start, so the embedded database's GIN index on its _id
        # (bootstrap PUSHDOWN_FIELDS, made only for existing collections) is there before
        # the first plan; otherwise each key lookup scans every key ever planned.
        self.keys.create_index([("plan", ASCENDING)], name="timer_key_plan")
        self.leases.ensure_indexes()

    # -- planners ----------------------------------------------------------------------------

    def plan(
        self,
        key: str,
        kind: str,
        due: datetime,
        payload: dict[str, Any],
        deadline: datetime | None = None,
    ) -> str:
        """Plan (or re-plan) `key`: returns the plan id. The previous plan, if any, is
        superseded and will not run."""
        plan = uuid.uuid4().hex[:16]
        self.jobs.insert_one(self._job(key, plan, kind, due, payload, deadline))
        self._point(key, plan)
        return plan

    def plan_once(self, jobs: list[tuple[str, str, datetime, dict[str, Any]]]) -> None:
        """Plan keys that are planned at most once ((key, kind, due, payload) each): a key
        planned before, even long done, is left as it is."""
        if not jobs:
            return
        docs = [self._job(key, ONCE, kind, due, payload, None) for key, kind, due, payload in jobs]
        _insert_ignoring_duplicates(self.jobs, docs)
        now = self.clock()
        pointers = [TimerKey(id=key, plan=ONCE, at=now) for key, *_ in jobs]
        _insert_ignoring_duplicates(self.keys, [_doc(p) for p in pointers])

    def cancel(self, key: str) -> None:
        self._point(key, None)

    def live_job(self, key: str) -> Job | None:
        plan = self.live_plan(key)
        return self.load(f"{key}@{plan}") if plan else None

    def live_plan(self, key: str) -> str | None:
        found = self.keys.find_one({"_id": key}, {"plan": 1})
        return found.get("plan") if found else None

    def _point(self, key: str, plan: str | None) -> None:
        doc = _doc(TimerKey(id=key, plan=plan, at=self.clock()))
        doc["plan"] = plan  # mongoengine leaves None out; the pointer must say it
        try:
            self.keys.replace_one({"_id": key}, doc, upsert=True)
        except DuplicateKeyError:  # two first plans at once: the other inserted it
            self.keys.replace_one({"_id": key}, doc)

    def _job(
        self,
        key: str,
        plan: str,
        kind: str,
        due: datetime,
        payload: dict[str, Any],
        deadline: datetime | None,
    ) -> dict[str, Any]:
        now = self.clock()
        record = TimerJob(
            id=f"{key}@{plan}",
            key=key,
            plan=plan,
            kind=kind,
            due=due,
            deadline=deadline,
            payload=payload,
            dm=minute_of(max(due, now)),
            planned=now,
        )
        return _doc(record)

    # -- the worker (the holder of a job's lease writes it) -----------------------------------

    def due_in_minute(self, minute: int) -> list[dict[str, Any]]:
        return list(self.jobs.find({"st": PENDING, "dm": minute}, _SCAN_FIELDS))

    def all_pending(self) -> list[dict[str, Any]]:
        return list(self.jobs.find({"st": PENDING}, _SCAN_FIELDS, batch_size=100_000))

    def load(self, job_id: str) -> Job | None:
        doc = self.jobs.find_one({"_id": job_id})
        return Job.from_doc(doc) if doc else None

    def finish(self, job_id: str, state: str, owner: str, err: str = "", note: str = "") -> None:
        fields = {"st": state, "at": self.clock(), "by": owner, "err": err, "note": note}
        self.jobs.update_one({"_id": job_id}, {"$set": fields})

    def retry(self, job_id: str, attempts: int, at: datetime, err: str, owner: str) -> None:
        fields = {"n": attempts, "next": at, "dm": minute_of(at), "err": err, "by": owner}
        self.jobs.update_one({"_id": job_id}, {"$set": fields})

    def counted(self, attempts: int, job_id: str) -> None:
        """Record that an attempt started (so a crash mid-run still counts it)."""
        self.jobs.update_one({"_id": job_id}, {"$set": {"n": attempts}})

    def prune(self, before: datetime) -> int:
        """Forget jobs finished before `before` (plans are never reused, so nothing can
        bring them back)."""
        removed = 0
        for state in FINAL:
            removed += self.jobs.delete_many({"st": state, "at": {"$lt": before}}).deleted_count
        return removed

    def counts(self) -> dict[str, int]:
        return {s: self.jobs.count_documents({"st": s}) for s in STATES}


_SCAN_FIELDS = {"due": 1, "next": 1, "kind": 1, "key": 1}


def _doc(record: me.Document) -> dict[str, Any]:
    record.validate()
    doc: dict[str, Any] = record.to_mongo().to_dict()
    return doc


def _insert_ignoring_duplicates(collection: Any, docs: list[dict[str, Any]]) -> None:
    try:
        collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
            raise


def retry_delay(attempts: int, base: timedelta, cap: timedelta) -> timedelta:
    return min(base * (2 ** min(attempts - 1, 30)), cap)
