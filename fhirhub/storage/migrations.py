"""Upgrades of stored data written by earlier versions of fhirhub."""

from __future__ import annotations

import logging
from typing import Any

from pymongo.database import Database
from pymongo.errors import BulkWriteError

from fhirhub.storage.documents import LEGACY_HISTORY, RESOURCES, VERSION_TYPE

log = logging.getLogger(__name__)

BATCH = 500


def merge_history(db: Database) -> int:
    """Move version documents from the old `history` collection into `resources`, renaming
    their type field to `ht`. Idempotent and safe to interrupt: each batch is inserted
    (already-moved ones are skipped as duplicates) before it is deleted from `history`, and
    the collection is dropped only once empty. Returns how many documents were moved."""
    if LEGACY_HISTORY not in db.list_collection_names():
        return 0
    legacy = db[LEGACY_HISTORY]
    moved = 0
    while True:
        batch = list(legacy.find({}).limit(BATCH))
        if not batch:
            break
        docs = [_as_version(doc) for doc in batch]
        try:
            db[RESOURCES].insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors") or []):
                raise
        for doc in batch:
            legacy.delete_one({"_id": doc["_id"]})
        moved += len(batch)
    legacy.drop()
    if moved:
        log.warning("moved %d versions from the old history collection into resources", moved)
    return moved


def _as_version(doc: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in doc.items() if k != "t"}
    if "t" in doc:
        out[VERSION_TYPE] = doc["t"]
    return out
