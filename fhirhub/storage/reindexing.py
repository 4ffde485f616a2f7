"""Reindexing: recompute the stored search keys and index of every live current document
and give versions their history keys (after search parameters or the layout change)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
from fhirhub.storage.resource_reads import ResourceReads
from fhirhub.storage.search_stats import LAYOUT, LAYOUT_VERSION, STATS
from fhirhub.storage.version_docs import all_extents

REINDEX_BATCH = 500


class Reindexing(ResourceReads):
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
            self.stats.widen(all_extents(doc["t"], index, doc["ts"], False))
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
            self.stats.widen(all_extents(doc[VERSION_TYPE], {}, doc["ts"], True))
            updates.append(UpdateOne({"_id": doc["_id"]}, {"$set": {HISTORY_KEYS: keys}}))
            if len(updates) >= REINDEX_BATCH:
                changed += self.resources.bulk_write(updates, ordered=False).modified_count
                updates = []
        if updates:
            changed += self.resources.bulk_write(updates, ordered=False).modified_count
        return changed
