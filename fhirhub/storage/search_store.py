"""Running searches against the `resources` collection: candidates by search keys (plain
equality, which FerretDB pushes down to PostgreSQL and a GIN index answers), the exact
filter here (filter_eval), pages in order bucket by bucket (walk.py)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from pymongo.database import Database

from fhirhub.fhir.errors import TooCostly
from fhirhub.fhir.search.keys import KEY_FIELDS
from fhirhub.storage import filter_eval
from fhirhub.storage.budget import DEFAULT_BUDGET_MS, within_budget
from fhirhub.storage.documents import RESOURCES, StoredVersion, decoded, index_fields
from fhirhub.storage.search_stats import Extent, SearchStats
from fhirhub.storage.type_counts import TypeCounts
from fhirhub.storage.walk import Conditions, Tree, Walk, WalkResult

Document = dict[str, Any]
_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="fhirhub-search")
# Search results never need the key fields: leaving them out saves converting and sending
# them (a third of a document).
RESULT_FIELDS = {f: 0 for f in KEY_FIELDS}


def current_document(stored: StoredVersion, index: dict[str, Any]) -> Document:
    """The shape a current document has for the matcher (in-memory matching)."""
    return {
        "_id": f"{stored.resource_type}/{stored.resource_id}",
        "t": stored.resource_type,
        "rid": stored.resource_id,
        "v": stored.version,
        "ts": stored.last_updated,
        "del": stored.deleted,
        **index_fields(index),
    }


class SearchStore:
    def __init__(self, db: Database, budget_ms: int = DEFAULT_BUDGET_MS):
        self.db = db
        self.resources = db[RESOURCES]
        self.budget_ms = budget_ms  # per query (storage/budget.py), and per walk
        self.stats = SearchStats(db)
        self.counts = TypeCounts(db, budget_ms)

    # -- reading candidates -------------------------------------------------------------

    def read(
        self, branches: list[Conditions], node: Conditions, cap: int | None, batch_size: int = 0
    ) -> list[Document] | None:
        """Candidates of every branch within a bucket (`node`), decoded; None when one
        branch has more than `cap`."""
        found: dict[str, Document] = {}
        for branch in branches:
            # The bucket's own condition wins over a branch's on the same key field (a date
            # sort walking date buckets of a date search): the exact filter still applies.
            query = {**branch, **node}
            cursor = self.resources.find(query, RESULT_FIELDS).max_time_ms(self.budget_ms)
            if cap is not None:
                cursor = cursor.limit(cap + 1)
            if batch_size:
                cursor = cursor.batch_size(batch_size)
            with within_budget("the search", self.budget_ms):
                docs = list(cursor)
            if cap is not None and len(docs) > cap:
                return None
            for doc in docs:
                found.setdefault(doc["_id"], doc)
        return [decoded(doc) for doc in found.values()]

    def walk(
        self,
        tree: Tree,
        branches: list[Conditions],
        exact: Document,
        need: int,
        *,
        prior: float,
        anchor: Any = None,
        reverse: bool = False,
        probe: int | None = None,
    ) -> WalkResult:
        """The first `need` matches in the tree's order after `anchor`."""
        walk = Walk(
            tree=tree,
            read=lambda node, cap: self.read(branches, node, cap),
            matches=lambda doc: filter_eval.matches(doc, exact),
            need=need,
            prior=prior,
            budget_ms=self.budget_ms,
            anchor=anchor,
            reverse=reverse,
            probe=probe,
        )
        return walk.run()

    def select(self, branches: list[Conditions], exact: Document, limit: int) -> list[Document]:
        """Every match of a few branches read whole (no order); TooCostly beyond `limit`
        candidates."""
        started = time.monotonic()
        docs = self.read(branches, {}, limit)
        if docs is None or (time.monotonic() - started) * 1000 > self.budget_ms:
            raise TooCostly(f"more than {limit} candidates; narrow the search")
        return [d for d in docs if filter_eval.matches(d, exact)]

    def by_keys(self, keys: Iterable[str]) -> list[Document]:
        """One _id lookup per key (FerretDB pushes down `_id` equality but not `$in`), over
        parallel connections when there are several."""
        unique = list(dict.fromkeys(keys))
        found = _POOL.map(self._one, unique) if len(unique) > 2 else map(self._one, unique)
        return [doc for doc in found if doc is not None]

    def _one(self, key: str) -> Document | None:
        doc = self.resources.find_one({"_id": key, "del": False}, RESULT_FIELDS)
        return decoded(doc) if doc is not None else None

    # -- sizes ----------------------------------------------------------------------------

    def type_count(self, resource_type: str) -> int:
        return self.counts.count(resource_type)

    def extents(self, resource_type: str) -> dict[str, Extent]:
        return self.stats.extents(resource_type)


def to_stored(doc: Document) -> StoredVersion:
    return StoredVersion.from_doc(doc)


def moment_key(value: datetime | None) -> str:
    return value.isoformat() if value else ""
