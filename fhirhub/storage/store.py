"""Versioned resource storage on pymongo, inside the subset FerretDB 1.24 supports.

No multi-document transactions, so an update is two single-document steps: insert the new
version document (unique _id makes racing writers collide), then compare-and-swap the current
document on its version number. A writer that dies between the steps leaves a version
without its current document; the next writer that collides with it rolls it forward once
it is older than STALE_AFTER, so no acknowledged version is ever lost. A create inserts its
version and its current document in one ordered insert command (documents.py says why).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from bson.errors import InvalidDocument
from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.database import Database
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
)

from fhirhub.fhir.errors import Conflict, PreconditionFailed
from fhirhub.fhir.search.extract import EXTENTS
from fhirhub.fhir.search.keys import LAST_UPDATED, as_day, day_number
from fhirhub.storage.budget import DEFAULT_BUDGET_MS, within_budget
from fhirhub.storage.documents import (
    INDEX_PREFIX,
    PUB_PENDING,
    RESOURCES,
    STORED_INDEX_FIELDS,
    TRANSACTIONS,
    VERSION_TYPE,
    StoredVersion,
    decode_resource,
    encode_resource,
    resource_key,
    stored_index,
    version_key,
    versions_filter,
)
from fhirhub.storage.history_walk import (
    HISTORY_CODE,
    HISTORY_KEYS,
    SYSTEM,
    HistoryTree,
    history_keys,
    number_second,
    second_number,
)
from fhirhub.storage.mongo import is_ferretdb
from fhirhub.storage.search_stats import LAYOUT, LAYOUT_VERSION, STATS, SearchStats
from fhirhub.storage.walk import Walk

log = logging.getLogger(__name__)

STALE_AFTER = timedelta(seconds=30)
DUPLICATE_KEY = 11000
INSERT_CHUNK = 100
PARALLEL_MIN_DOCS = 40
# FerretDB: histories up to this many versions are read once and ordered here (history_page).
SORT_IN_MEMORY = 1000
# A type or system history page reads at least this many versions, so a short history
# gets its total (a longer one is walked, not counted: no total).
HISTORY_TOTAL_UP_TO = 50
REINDEX_BATCH = 500
# Shared by all requests: bounds the database connections one process uses for bulk work.
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="fhirhub-bulk")
Document = dict[str, Any]
# Projections: FerretDB converts every value it returns (a current document's index fields
# are most of them), so reads ask only for what they use (1.43 -> 1.25 ms per read).
VERSION_FIELDS = {f: 1 for f in ("t", VERSION_TYPE, "rid", "v", "ts", "del", "m", "res")}
VREAD_FIELDS = {**VERSION_FIELDS, "txn": 1}  # a version's transaction decides its visibility
CAS_FIELDS = {"v": 1, "ts": 1, "del": 1}
COMMITTED_CACHE_LIMIT = 100_000
MAX_ATTEMPTS = 50  # with the backoff below: about 2 s of contention before a 409

Clock = Callable[[], datetime]

# MongoDB: the same search keys as the embedded database's GIN indexes (one multikey index
# per key field: MongoDB allows one array field per compound index), type counts.
SEARCH_INDEXES = (
    ("kt",),
    ("kr",),
    ("ks",),
    ("kd",),
    ("kb",),
    ("hk",),
    ("t", "del"),
)

SECONDARY_INDEXES = ("type_updated", "instance_versions", "updated", "outbox", "transaction")


def utc_now_ms() -> datetime:
    # BSON dates hold milliseconds; truncate so meta.lastUpdated equals what is stored.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@lru_cache(maxsize=256)  # a transaction formats one moment for each of its resources
def fhir_instant(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


class ResourceStore:
    def __init__(
        self,
        db: Database,
        clock: Clock = utc_now_ms,
        index_of: Callable[[dict[str, Any]], Mapping[str, Any]] | None = None,
        budget_ms: int = DEFAULT_BUDGET_MS,
    ):
        self.db = db
        self.budget_ms = budget_ms  # per history query (storage/budget.py)
        self._sorts: bool | None = None
        # Search index fields for a resource: needed when a current document is rebuilt from
        # a history version (compensation, roll-forward), which carries no index.
        self.index_of = index_of
        self.resources = db[RESOURCES]
        # Version documents live in the same collection (see documents.py).
        self.history = self.resources
        self.clock = clock
        self.stats = SearchStats(db)
        self._committed: set[str] = set()
        # Test hook: called before each single-document write step (fault injection).
        self.before_write: Callable[[str], None] | None = None

    def ensure_indexes(self) -> None:
        if RESOURCES not in self.db.list_collection_names():
            # Made now, so the embedded set-up finds its table for the GIN indexes.
            self.db.create_collection(RESOURCES)
        if self.is_ferretdb():
            # FerretDB 1.24 uses no secondary btree index: it pushes filters down as `@>`,
            # which only the GIN indexes of embedded/pg_indexes.py serve, and never pushes a
            # sort down. Each one only slowed every insert (dropping them: +7%).
            existing = self.resources.index_information()
            for name in SECONDARY_INDEXES:
                if name in existing:
                    self.resources.drop_index(name)
            return
        self.resources.create_index([("t", ASCENDING), ("ts", DESCENDING)], name="type_updated")
        self.resources.create_index(
            [(VERSION_TYPE, ASCENDING), ("rid", ASCENDING), ("v", DESCENDING)],
            name="instance_versions",
        )
        self.resources.create_index([(VERSION_TYPE, ASCENDING), ("ts", DESCENDING)], name="updated")
        self.resources.create_index([("pub", ASCENDING), ("ts", ASCENDING)], name="outbox")
        self.resources.create_index([("txn", ASCENDING)], name="transaction", sparse=True)
        wanted = {"search_" + "_".join(fields): fields for fields in SEARCH_INDEXES}
        for name in self.resources.index_information():
            if name.startswith("search_") and name not in wanted:  # on the former s_* fields
                self.resources.drop_index(name)
        for name, fields in wanted.items():
            self.resources.create_index([(f, ASCENDING) for f in fields], name=name)

    def is_ferretdb(self) -> bool:
        return is_ferretdb(self.db)

    # -- reads ---------------------------------------------------------------------------

    def current(self, resource_type: str, resource_id: str) -> StoredVersion | None:
        doc = self._by_id(resource_key(resource_type, resource_id), VERSION_FIELDS)
        return StoredVersion.from_doc(doc) if doc else None

    def _by_id(self, key: str, projection: Mapping[str, int]) -> Document | None:
        """One document by `_id`: a single-batch `find` command, which skips find_one's
        cursor machinery (60-70 us of client CPU per read, measured; reads are the hottest
        path)."""
        reply = self.db.command(
            "find",
            RESOURCES,
            filter={"_id": key},
            projection=projection,
            limit=1,
            singleBatch=True,
            codec_options=self.resources.codec_options,
        )
        batch: list[Document] = reply["cursor"]["firstBatch"]
        return batch[0] if batch else None

    def current_many(
        self, keys: list[tuple[str, str]]
    ) -> dict[tuple[str, str], StoredVersion | None]:
        """Current versions of many resources: one `_id` lookup each (FerretDB does not push
        `$in` down), run over parallel connections."""
        found = _POOL.map(lambda key: self.current(*key), keys)
        return dict(zip(keys, found, strict=True))

    def version(self, resource_type: str, resource_id: str, version: int) -> StoredVersion | None:
        doc = self._by_id(version_key(resource_type, resource_id, version), VREAD_FIELDS)
        if doc is None or self.uncommitted(doc):
            return None
        return StoredVersion.from_doc(doc)

    def uncommitted(self, history_doc: Mapping[str, Any]) -> bool:
        """Written by a transaction that has not committed (its log record still exists)."""
        txn = history_doc.get("txn")
        if txn is None or txn in self._committed:
            return False
        if self.db[TRANSACTIONS].find_one({"_id": txn}, {"_id": 1}) is not None:
            return True
        # The log record is written before the first version and deleted at the commit, and
        # ids are never reused: once it is gone, it is gone for good. Remembering that saves
        # a lookup on every vread of what a transaction (e.g. any import) wrote.
        if len(self._committed) >= COMMITTED_CACHE_LIMIT:
            self._committed.clear()
        self._committed.add(txn)
        return False

    def pending_transactions(self) -> list[str]:
        return [doc["_id"] for doc in self.db[TRANSACTIONS].find({}, {"_id": 1})]

    # -- writes --------------------------------------------------------------------------

    def write(
        self,
        resource_type: str,
        resource_id: str,
        resource: dict[str, Any] | None,
        *,
        method: str,
        expected_version: int | None = None,
        must_not_exist: bool = False,
        index: Mapping[str, Any] | None = None,
        txn: str | None = None,
        fresh_id: bool = False,
        read_before: tuple[StoredVersion | None] | None = None,
    ) -> StoredVersion:
        """Write a new version (resource None means delete). Returns the stored version.

        `fresh_id`: the caller generated the id (uuid4) just now, so there is no current
        version to read; that saves a round trip per create. A collision (practically
        impossible) still fails the history insert and falls back to the read.
        `read_before`: (current,) as the caller just read it; used instead of reading again.
        If it is stale, the history insert collides and the next attempt reads afresh."""
        key = resource_key(resource_type, resource_id)
        for attempt in range(MAX_ATTEMPTS):
            cur: Document | None
            if attempt == 0 and (fresh_id or read_before is not None):
                known = read_before[0] if read_before else None
                cur = None if known is None else _cas_fields(known)
            else:
                cur = self.resources.find_one({"_id": key}, CAS_FIELDS)
            cur_version = cur["v"] if cur else 0
            live = cur is not None and not cur.get("del")
            if expected_version is not None and (not live or cur_version != expected_version):
                raise PreconditionFailed(
                    f"{key} is at version {cur_version if live else 'none (deleted or absent)'}, "
                    f"not the expected version {expected_version}"
                )
            if must_not_exist and live:
                raise Conflict(f"{key} already exists")
            new_version = cur_version + 1
            moment = self.clock()
            if cur is not None and moment <= cur["ts"]:
                moment = cur["ts"] + timedelta(milliseconds=1)
            body = _with_meta(resource, resource_id, new_version, moment)
            doc: dict[str, Any] = {
                "t": resource_type,
                "rid": resource_id,
                "v": new_version,
                "ts": moment,
                "del": resource is None,
                "m": method,
                "res": encode_resource(body),
            }
            hist = _version_doc(doc, txn)
            deleted = resource is None
            index = index or {}
            self.stats.widen(_all_extents(resource_type, index, moment, deleted))
            current = {**doc, **stored_index(resource_type, resource_id, index, moment, deleted)}
            self._step("history")
            if cur is None:
                # A create: version and current document in one insert command.
                self._step("current")
                inserted = self._insert_new(hist, {"_id": key, **current})
                if inserted == 2:
                    return StoredVersion.from_doc(doc, body)
                if inserted == 1:  # the id was taken meanwhile: undo our version, retry
                    self.history.delete_one({"_id": hist["_id"]})
                else:
                    self._roll_forward_if_stale(key, hist["_id"], cur_version)
                _back_off(attempt)
                continue
            try:
                self.history.insert_one(hist)
            except DuplicateKeyError:
                self._roll_forward_if_stale(key, hist["_id"], cur_version)
                _back_off(attempt)
                continue
            with self._undone_on_failure(hist):
                self._step("current")
                swapped = self._swap_current(key, cur_version, current)
            if swapped:
                return StoredVersion.from_doc(doc, body)
            self.history.delete_one({"_id": hist["_id"]})
            _back_off(attempt)
        raise Conflict(f"{key} is being updated concurrently; retry the request")

    def _insert_new(self, version: Document, current: Document) -> int:
        """Insert a new resource's first version and current document, in that order, in one
        command. Returns how many went in: 2, or 1 (the current `_id` exists), or 0 (the
        version exists: another writer, or one that died between its two steps).

        FerretDB inserts the documents one by one: when the database refuses the current
        document for another reason (it then answers with a plain OperationFailure, which
        does not say how many went in), the version may be in alone, and is removed."""
        with self._undone_on_failure(version):
            try:
                self.resources.insert_many([version, current], ordered=True)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors") or []
                if any(e.get("code") != DUPLICATE_KEY for e in errors):
                    raise
                return int(exc.details.get("nInserted", 0))
        return 2

    @contextmanager
    def _undone_on_failure(self, version: Document) -> Iterator[None]:
        """Remove our new version when the step after its insert fails for certain: nothing
        half-written stays behind (a version without its current document, pending in the
        outbox, which the next writer of the id would even roll forward). A lost connection
        is not certain (the step may have gone through): that is what rolling forward is
        for. Process death (BaseException) likewise leaves it to rolling forward."""
        try:
            yield
        except ConnectionFailure:
            raise
        except Exception:
            # Matching `ts` as well: only our version, never another writer's of that id.
            self._discard({"_id": version["_id"], "ts": version["ts"]})
            raise

    def _discard(self, version_filter: Document) -> None:
        try:
            self.history.delete_one(version_filter)
        except PyMongoError:
            log.exception("could not remove the failed write's version %s", version_filter)

    def write_batch(self, plans: list[PlannedWrite], txn: str) -> list[StoredVersion]:
        """Stage many writes in few round trips (transactions). Any collision raises
        Conflict; the caller compensates through the transaction log."""
        staged = self.staged_docs(plans, txn, self.clock())
        self.write_staged(staged.versions, staged.creates, staged.replaces)
        return staged.results

    def staged_docs(self, plans: list[PlannedWrite], txn: str, moment: datetime) -> StagedDocs:
        """The documents that stage `plans` under transaction `txn` (nothing written)."""
        staged = StagedDocs([], [], [], [])
        self.stats.widen(
            entry
            for p in plans
            for entry in _all_extents(p.resource_type, p.index, moment, p.resource is None)
        )
        for plan in plans:
            version = plan.prior_version + 1
            body = _with_meta(plan.resource, plan.resource_id, version, moment)
            doc: dict[str, Any] = {
                "t": plan.resource_type,
                "rid": plan.resource_id,
                "v": version,
                "ts": moment,
                "del": plan.resource is None,
                "m": plan.method,
                "res": encode_resource(body),
            }
            key = resource_key(plan.resource_type, plan.resource_id)
            staged.versions.append(_version_doc(doc, txn))
            # `txn` on the staged current document: compensation touches only its own.
            fields = stored_index(
                plan.resource_type, plan.resource_id, plan.index, moment, plan.resource is None
            )
            current = {**doc, "txn": txn, **fields}
            if plan.prior_version == 0:
                staged.creates.append({"_id": key, **current})
            else:
                staged.replaces.append((key, plan.prior_version, current))
            staged.results.append(StoredVersion.from_doc(doc, body))
        return staged

    def write_staged(
        self,
        versions: list[Document],
        creates: list[Document],
        replaces: list[tuple[str, int, Document]],
    ) -> None:
        self._insert_staged(versions, creates)
        for key, prior, current in replaces:
            self._step("update")
            if self.resources.replace_one({"_id": key, "v": prior}, current).matched_count != 1:
                raise Conflict(f"{key} changed while the transaction was being written")

    def insert_ahead(self, versions: list[Document]) -> Future[None]:
        """Start inserting a transaction's versions in the background (they stay invisible
        until its commit); the future raises Conflict on a collision."""

        def insert() -> None:
            self._step("ahead")
            try:
                for _, docs in _chunks(versions):
                    self.resources.insert_many(docs, ordered=True)
            except BulkWriteError as exc:
                raise Conflict(f"a version in the transaction already exists: {exc}") from None

        return _POOL.submit(insert)

    def _insert_staged(self, hist_docs: list[Document], creates: list[Document]) -> None:
        """Insert a transaction's versions and new current documents (one collection, so
        each chunk of both kinds is one command). Large sets go in chunks over parallel
        connections: FerretDB converts and PostgreSQL indexes each insert command on one
        core, and the request thread only waits meanwhile. Order between the chunks does
        not matter: the versions stay invisible until the commit, and any failure is
        compensated through the transaction log."""
        everything = hist_docs + creates
        parallel = len(everything) >= PARALLEL_MIN_DOCS
        futures: list[Future[Any]] = []
        try:
            try:
                self._step("history")
                for start, docs in _chunks(everything):
                    if start + len(docs) > len(hist_docs) and start <= len(hist_docs):
                        self._step("create")  # the first chunk holding current documents
                    if parallel:
                        futures.append(_POOL.submit(self.resources.insert_many, docs))
                    else:
                        self.resources.insert_many(docs, ordered=True)
            finally:
                wait(futures)  # nothing may still be writing once this returns or raises
            for future in futures:
                future.result()
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors") or []
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise  # not a race: the caller compensates and answers 500
            raise Conflict(f"a resource in the transaction changed concurrently: {exc}") from None

    def _step(self, name: str) -> None:
        if self.before_write is not None:
            self.before_write(name)

    def _swap_current(self, key: str, expected: int, current: dict[str, Any]) -> bool:
        if expected == 0:
            try:
                self.resources.insert_one({"_id": key, **current})
            except DuplicateKeyError:
                return False
            return True
        result = self.resources.replace_one({"_id": key, "v": expected}, current)
        return result.matched_count == 1

    def _roll_forward_if_stale(self, key: str, hist_id: str, cur_version: int) -> None:
        orphan = self.history.find_one({"_id": hist_id})
        if orphan is None or self.uncommitted(orphan):
            return
        if orphan["ts"] > self.clock() - STALE_AFTER:
            return  # a live writer is between its two steps; the caller retries
        try:
            self._swap_current(key, cur_version, self._current_from_history(orphan))
        except (OperationFailure, InvalidDocument, OverflowError, ValueError) as exc:
            # The database refuses it as a current document (written before input checks
            # existed): it can never become current, and would block the id for good.
            log.warning("dropping version %s that cannot become current: %s", hist_id, exc)
            self._discard({"_id": hist_id})

    def restore(
        self, resource_type: str, resource_id: str, written: int, prior: int, txn: str
    ) -> bool:
        """Compensation: put back version `prior` (0 = absent) if the version `written` by
        transaction `txn` is still current. Matching the transaction too means a document
        another writer put there (a create that beat ours to the id) is left alone."""
        key = resource_key(resource_type, resource_id)
        ours = {"_id": key, "v": written, "txn": txn}
        if prior == 0:
            return self.resources.delete_one(ours).deleted_count == 1
        old = self.history.find_one({"_id": version_key(resource_type, resource_id, prior)})
        if old is None:
            return False
        return self.resources.replace_one(ours, self._current_from_history(old)).matched_count == 1

    def _current_from_history(self, version_doc: Mapping[str, Any]) -> Document:
        fields = {"t": version_doc[VERSION_TYPE]}
        fields.update((k, version_doc[k]) for k in ("rid", "v", "ts", "del", "m", "res"))
        resource = decode_resource(fields["res"])
        if resource is not None and self.index_of is not None:
            fields.update(
                stored_index(
                    fields["t"], fields["rid"], self.index_of(resource), fields["ts"], False
                )
            )
        return fields

    def reindex(
        self, resource_type: str | None, index_of: Callable[[dict[str, Any]], Mapping[str, Any]]
    ) -> int:
        """Recompute the index fields of every live current document (after search
        parameters change). Compare-and-swap on the version, so a concurrent write wins."""
        # `t` also keeps version documents out.
        query: dict[str, Any] = {"del": False, "t": resource_type or {"$exists": True}}
        changed = 0
        for doc in self.resources.find(query).batch_size(REINDEX_BATCH):
            fresh = {k: v for k, v in doc.items() if k not in STORED_INDEX_FIELDS}
            fresh = {k: v for k, v in fresh.items() if not k.startswith(INDEX_PREFIX)}
            index = index_of(decode_resource(doc["res"]) or {})
            self.stats.widen(_all_extents(doc["t"], index, doc["ts"], False))
            fresh.update(stored_index(doc["t"], doc["rid"], index, doc["ts"], False))
            if fresh != doc:
                result = self.resources.replace_one({"_id": doc["_id"], "v": doc["v"]}, fresh)
                changed += result.modified_count
        changed += self._key_versions(resource_type)
        self.db[STATS].update_one({"_id": LAYOUT}, {"$set": {"v": LAYOUT_VERSION}}, upsert=True)
        return changed

    def _key_versions(self, resource_type: str | None) -> int:
        """Give versions written before history keys existed their keys (and extents)."""
        query = {VERSION_TYPE: resource_type or {"$exists": True}}
        fields = {VERSION_TYPE: 1, "ts": 1, HISTORY_KEYS: 1}
        updates: list[UpdateOne] = []
        changed = 0
        for doc in self.resources.find(query, fields).batch_size(REINDEX_BATCH):
            keys = history_keys(doc[VERSION_TYPE], doc["ts"])
            if doc.get(HISTORY_KEYS) == keys:
                continue
            self.stats.widen(_all_extents(doc[VERSION_TYPE], {}, doc["ts"], True))
            updates.append(UpdateOne({"_id": doc["_id"]}, {"$set": {HISTORY_KEYS: keys}}))
            if len(updates) >= REINDEX_BATCH:
                changed += self.resources.bulk_write(updates, ordered=False).modified_count
                updates = []
        if updates:
            changed += self.resources.bulk_write(updates, ordered=False).modified_count
        return changed

    # -- history -------------------------------------------------------------------------

    def history_page(
        self,
        resource_type: str | None,
        resource_id: str | None,
        since: datetime | None,
        before: datetime | None,
        offset: int,
        count: int,
    ) -> tuple[list[StoredVersion], int | None]:
        """A page of versions newest first and their total (None: more than were read,
        for a type or system history, which is walked rather than counted)."""
        if resource_id is None:
            return self._walked_history(resource_type, since, before, offset, count)
        query: dict[str, Any] = {}
        pending = self.pending_transactions()
        if pending:
            query["txn"] = {"$nin": pending}
        if resource_type:
            query["t"] = resource_type
        if resource_id:
            query["rid"] = resource_id
        query = versions_filter(query)
        if since or before:
            query["ts"] = {}
            if since:
                query["ts"]["$gte"] = since
            if before:
                query["ts"]["$lte"] = before
        with within_budget("this history", self.budget_ms):
            if not self.sorts_large_results:
                # FerretDB sorts in Go after reading every match either way; up to
                # SORT_IN_MEMORY versions, one unsorted read (which stops early) is the
                # page and the total at once, instead of a count and a sorted read.
                found = list(
                    self.history.find(query).limit(SORT_IN_MEMORY + 1).max_time_ms(self.budget_ms)
                )
                if len(found) <= SORT_IN_MEMORY:
                    ordered = _newest_first(found, by_version=resource_id is not None)
                    page = ordered[offset : offset + count]
                    return [StoredVersion.from_doc(d) for d in page], len(found)
            sort = [("v", DESCENDING)] if resource_id else [("ts", DESCENDING), ("_id", ASCENDING)]
            cursor = self.history.find(query).sort(sort).skip(offset).limit(count)
            total = self.history.count_documents(query, maxTimeMS=self.budget_ms)
            return [StoredVersion.from_doc(d) for d in cursor.max_time_ms(self.budget_ms)], total

    def _walked_history(
        self,
        resource_type: str | None,
        since: datetime | None,
        before: datetime | None,
        offset: int,
        count: int,
    ) -> tuple[list[StoredVersion], int | None]:
        owner = resource_type or SYSTEM
        extent = self.stats.extents(owner).get(HISTORY_CODE)
        if extent is None or extent.lo is None:
            return [], 0
        first, last = number_second(extent.lo[0]), number_second(extent.lo[1])
        if since is not None:
            first = max(first, since.replace(microsecond=0))
        if before is not None:
            last = min(last, before)
        if first > last:
            return [], 0
        pending = set(self.pending_transactions())

        def visible(doc: Document) -> bool:
            if doc.get("txn") in pending or VERSION_TYPE not in doc:
                return False
            if resource_type and doc[VERSION_TYPE] != resource_type:
                return False
            moment = doc["ts"]
            return (since is None or moment >= since) and (before is None or moment <= before)

        def read(node: dict[str, Any], cap: int | None) -> list[Document] | None:
            cursor = self.history.find(node, VREAD_FIELDS).max_time_ms(self.budget_ms)
            if cap is not None:
                cursor = cursor.limit(cap + 1)
            with within_budget("this history", self.budget_ms):
                docs = list(cursor)
            return None if cap is not None and len(docs) > cap else docs

        walk = Walk(
            tree=HistoryTree(owner, first, last),
            read=read,
            matches=visible,
            need=max(offset + count + 1, HISTORY_TOTAL_UP_TO + 1),
            prior=float("inf"),
            budget_ms=self.budget_ms,
            reverse=True,
        )
        result = walk.run()
        page = result.docs[offset : offset + count]
        total = len(result.docs) if result.complete else None
        return [StoredVersion.from_doc(d) for d in page], total

    @property
    def sorts_large_results(self) -> bool:
        """False on FerretDB 1.24, which never pushes a sort down (see ensure_indexes)."""
        if self._sorts is None:
            self._sorts = not self.is_ferretdb()
        return self._sorts


def _extents(index: Mapping[str, Any], moment: datetime) -> dict[str, dict[str, int]]:
    """What a live current document adds to its type's date extents (search_stats)."""
    return {**(index.get(EXTENTS) or {}), LAST_UPDATED: {"lo": day_number(as_day(moment))}}


def _all_extents(
    resource_type: str, index: Mapping[str, Any], moment: datetime, deleted: bool
) -> list[tuple[str, dict[str, dict[str, int]]]]:
    """A write's extents: its current document's (unless a delete) and its version's in the
    type and system history (to the second: a history page starts at the newest)."""
    second = {HISTORY_CODE: {"lo": second_number(moment)}}
    own = second if deleted else {**_extents(index, moment), **second}
    return [(resource_type, own), (SYSTEM, second)]


def _newest_first(docs: list[Document], by_version: bool) -> list[Document]:
    """History order: an instance's versions by number, otherwise by time (then _id)."""
    if by_version:
        return sorted(docs, key=lambda d: int(d["v"]), reverse=True)
    by_key = sorted(docs, key=lambda d: str(d["_id"]))
    return sorted(by_key, key=lambda d: d["ts"], reverse=True)  # stable: ties keep _id order


@dataclass
class StagedDocs:
    """What staging a set of planned writes inserts and replaces, and what it returns."""

    versions: list[Document]
    creates: list[Document]  # current documents of new resources
    replaces: list[tuple[str, int, Document]]  # (key, prior version, current document)
    results: list[StoredVersion]


@dataclass(frozen=True)
class PlannedWrite:
    resource_type: str
    resource_id: str
    resource: dict[str, Any] | None  # None: delete
    method: str
    prior_version: int  # 0 when the resource does not exist yet
    index: Mapping[str, Any]


def _with_meta(
    resource: dict[str, Any] | None, resource_id: str, version: int, moment: datetime
) -> dict[str, Any] | None:
    if resource is None:
        return None
    meta = dict(resource.get("meta") or {})
    meta["versionId"] = str(version)
    meta["lastUpdated"] = fhir_instant(moment)
    body = {"resourceType": resource["resourceType"], "id": resource_id}
    body.update((k, v) for k, v in resource.items() if k not in ("resourceType", "id", "meta"))
    body["meta"] = meta
    return body


def _chunks(docs: list[Document]) -> list[tuple[int, list[Document]]]:
    """(offset, chunk) pairs."""
    return [(i, docs[i : i + INSERT_CHUNK]) for i in range(0, len(docs), INSERT_CHUNK)]


def _version_doc(doc: Document, txn: str | None) -> Document:
    """The version document of a current document's fields (`t` becomes `ht`)."""
    version = {
        "_id": version_key(doc["t"], doc["rid"], doc["v"]),
        VERSION_TYPE: doc["t"],
        **{k: v for k, v in doc.items() if k != "t"},
        "pub": PUB_PENDING,
        HISTORY_KEYS: history_keys(doc["t"], doc["ts"]),
    }
    if txn:
        version["txn"] = txn
    return version


def _back_off(attempt: int) -> None:
    # The winner of a collision needs one more round trip to finish its write; retrying at
    # once would mostly collide with it again and burn the attempts in a few milliseconds.
    time.sleep(random.uniform(0.5, 1.5) * min(0.001 * 2**attempt, 0.05))


def _cas_fields(stored: StoredVersion) -> Document:
    return {"v": stored.version, "ts": stored.last_updated, "del": stored.deleted}
