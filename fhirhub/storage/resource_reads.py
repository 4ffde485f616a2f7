"""The resource store's shared state and its reads by id: current documents, versions, and
whether a transaction's version is visible yet. The writes, staged transactions, history
and reindexing (version_writes.py, staged_writes.py, history_reads.py, reindexing.py) build
on this; store.py puts them together as ResourceStore."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pymongo.database import Database

from fhirhub.storage.budget import DEFAULT_BUDGET_MS
from fhirhub.storage.documents import (
    RESOURCES,
    TRANSACTIONS,
    VERSION_TYPE,
    StoredVersion,
    live_resource,
    resource_key,
    version_key,
)
from fhirhub.storage.mongo import is_ferretdb
from fhirhub.storage.search_stats import SearchStats
from fhirhub.storage.version_docs import Clock, Document, utc_now_ms

# Shared by all requests: bounds the database connections one process uses for bulk work.
POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="fhirhub-bulk")
# Projections: FerretDB converts every value it returns (a current document's index fields
# are most of them), so reads ask only for what they use (1.43 -> 1.25 ms per read).
VERSION_FIELDS = {f: 1 for f in ("t", VERSION_TYPE, "rid", "v", "ts", "del", "m", "res")}
VREAD_FIELDS = {**VERSION_FIELDS, "txn": 1}  # a version's transaction decides its visibility
CAS_FIELDS = {"v": 1, "ts": 1, "del": 1}
COMMITTED_CACHE_LIMIT = 100_000


class ResourceReads:
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

    def is_ferretdb(self) -> bool:
        return is_ferretdb(self.db)

    def current(self, resource_type: str, resource_id: str) -> StoredVersion | None:
        doc = self._by_id(resource_key(resource_type, resource_id), VERSION_FIELDS)
        return StoredVersion.from_doc(doc) if doc else None

    def current_resource(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        """The live resource, None when absent or deleted."""
        return live_resource(self.current(resource_type, resource_id))

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
        found = POOL.map(lambda key: self.current(*key), keys)
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

    def _step(self, name: str) -> None:
        if self.before_write is not None:
            self.before_write(name)

    @property
    def sorts_large_results(self) -> bool:
        """False on FerretDB 1.24, which never pushes a sort down (see ensure_indexes)."""
        if self._sorts is None:
            self._sorts = not self.is_ferretdb()
        return self._sorts
