"""Reindexing: recompute the stored search keys and index of every live current document
and give versions their history keys (after search parameters or the layout change).

It works in bounded steps, type by type, and can be resumed. One cursor over the whole
database that rewrote documents as it went ran into the 60 s socket timeout at ~70k
documents. Now a type's ids are listed first (a streamed projection, nothing written
meanwhile), then REINDEX_BATCH documents at a time are read by `_id` (the lookup FerretDB
pushes down), recomputed, and swapped in on their version (a concurrent write wins). After
each batch the run records where it got to (`~reindex` in search_stats); a run that was
stopped picks up after the last recorded id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pymongo import UpdateOne

from fhirhub.storage.documents import (
    INDEX_PREFIX,
    STORED_INDEX_FIELDS,
    VERSION_TYPE,
    decode_resource,
    stored_index,
)
from fhirhub.storage.history_walk import HISTORY_KEYS, history_keys
from fhirhub.storage.reindex_state import Progress, ReindexState, Report
from fhirhub.storage.resource_reads import POOL, ResourceReads
from fhirhub.storage.search_stats import LAYOUT, LAYOUT_VERSION, STATS
from fhirhub.storage.version_docs import Document, all_extents

REINDEX_BATCH = 200
LIST_BATCH = 2000  # ids (and a version's time) per getMore while a type is listed
IndexOf = Callable[[dict[str, Any]], Mapping[str, Any]]


class Reindexing(ResourceReads):
    def reindex(
        self,
        resource_type: str | None,
        index_of: IndexOf,
        *,
        types: Iterable[str] | None = None,
        progress: Progress | None = None,
        restart: bool = False,
    ) -> int:
        """Reindex one type, or `types` (default: every type stored). Returns how many
        documents changed. Resumes an interrupted run over the same types unless
        `restart`."""
        scope = [resource_type] if resource_type else sorted(set(types or self._stored_types()))
        state = ReindexState.load(self.db[STATS], scope, restart)
        for resource in scope:
            if state.begin("resources", resource):
                self._reindex_current(resource, index_of, state, progress)
        for resource in scope:
            if state.begin("versions", resource):
                self._key_versions(resource, state, progress)
        self.db[STATS].update_one({"_id": LAYOUT}, {"$set": {"v": LAYOUT_VERSION}}, upsert=True)
        return state.finish()

    def _stored_types(self) -> list[str]:
        # Without a list from the caller (the CLI passes every R4 type): MongoDB answers
        # from its index; FerretDB reads every document, fine for small databases only.
        return [t for t in self.resources.distinct("t") if isinstance(t, str)]

    def _reindex_current(
        self, resource: str, index_of: IndexOf, state: ReindexState, progress: Progress | None
    ) -> None:
        listed = self.resources.find({"t": resource, "del": False}, {"_id": 1})
        ids = sorted(str(doc["_id"]) for doc in listed.batch_size(LIST_BATCH))
        todo = [key for key in ids if state.after is None or key > state.after]
        done = len(ids) - len(todo)
        for start in range(0, len(todo), REINDEX_BATCH):
            batch = todo[start : start + REINDEX_BATCH]
            docs = [d for d in POOL.map(self._whole, batch) if d is not None]
            swaps = [f for d in docs if (f := self._reindexed(d, index_of)) is not None]
            state.changed += sum(POOL.map(self._swap_version, swaps))
            done += len(batch)
            state.record(batch[-1])
            if progress is not None:
                progress(Report("resources", resource, done, len(ids), state.changed))

    def _reindexed(self, doc: Document, index_of: IndexOf) -> Document | None:
        """The document with its index recomputed, or None when nothing changed."""
        fresh = {k: v for k, v in doc.items() if k not in STORED_INDEX_FIELDS}
        fresh = {k: v for k, v in fresh.items() if not k.startswith(INDEX_PREFIX)}
        index = index_of(decode_resource(doc["res"]) or {})
        self.stats.widen(all_extents(doc["t"], index, doc["ts"], False))
        fresh.update(stored_index(doc["t"], doc["rid"], index, doc["ts"], False))
        return None if fresh == doc else fresh

    def _whole(self, key: str) -> Document | None:
        return self.resources.find_one({"_id": key, "del": False})

    def _swap_version(self, fresh: Document) -> int:
        result = self.resources.replace_one({"_id": fresh["_id"], "v": fresh["v"]}, fresh)
        return result.modified_count

    def _key_versions(self, resource: str, state: ReindexState, progress: Progress | None) -> None:
        """Give versions written before history keys existed their keys (and extents)."""
        fields = {VERSION_TYPE: 1, "ts": 1, HISTORY_KEYS: 1}
        listed = self.resources.find({VERSION_TYPE: resource}, fields).batch_size(LIST_BATCH)
        updates: list[UpdateOne] = []
        total = 0
        for doc in listed:
            total += 1
            keys = history_keys(doc[VERSION_TYPE], doc["ts"])
            if doc.get(HISTORY_KEYS) != keys:
                self.stats.widen(all_extents(doc[VERSION_TYPE], {}, doc["ts"], True))
                updates.append(UpdateOne({"_id": doc["_id"]}, {"$set": {HISTORY_KEYS: keys}}))
        if total and not updates and progress is not None:
            progress(Report("versions", resource, total, total, state.changed))
        # Written after the listing's cursor is done, a bounded batch per command.
        for start in range(0, len(updates), REINDEX_BATCH):
            batch = updates[start : start + REINDEX_BATCH]
            state.changed += self.resources.bulk_write(batch, ordered=False).modified_count
            state.record(None)
            if progress is not None:
                done = total - len(updates) + start + len(batch)
                progress(Report("versions", resource, done, total, state.changed))
