"""Versioned resource storage on pymongo, inside the subset FerretDB 1.24 supports.

No multi-document transactions, so an update is two single-document steps: insert the new
version document (unique _id makes racing writers collide), then compare-and-swap the current
document on its version number. A writer that dies between the steps leaves a version
without its current document; the next writer that collides with it rolls it forward once
it is older than STALE_AFTER, so no acknowledged version is ever lost. A create inserts its
version and its current document in one ordered insert command (documents.py says why).
"""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING

from fhirhub.storage.documents import RESOURCES, VERSION_TYPE
from fhirhub.storage.history_reads import HistoryReads
from fhirhub.storage.reindexing import Reindexing
from fhirhub.storage.staged_writes import PlannedWrite, StagedDocs, StagedWrites
from fhirhub.storage.version_docs import Clock, Document, fhir_instant, utc_now_ms
from fhirhub.storage.version_writes import VersionWrites

# Re-exported: the store's callers know these names from here.
__all__ = [
    "Clock",
    "Document",
    "PlannedWrite",
    "ResourceStore",
    "StagedDocs",
    "fhir_instant",
    "utc_now_ms",
]

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


class ResourceStore(VersionWrites, StagedWrites, HistoryReads, Reindexing):
    """Reads by id (resource_reads.py), single writes (version_writes.py), staged
    transaction writes (staged_writes.py), history (history_reads.py), reindexing
    (reindexing.py), and the indexes all of them use."""

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
