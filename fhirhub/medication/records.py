"""Knowledge tables in the database: fixed-schema records (mongoengine documents, stored
with pymongo), written from the shipped and site files at start, read back to build the
in-memory tables the checks use.

The database copy is what every process checks against, so a site's override is the same
for the web workers and the worker; a digest of the files skips rewriting ~1,000 records
when nothing changed since the last start.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mongoengine as me
from pymongo import ReplaceOne
from pymongo.database import Database

from fhirhub.medication.knowledge import Knowledge, build, read_tables

COLLECTION = "medication_knowledge"
DIGEST_ID = "_digest"


class KnowledgeRecord(me.Document):
    id = me.StringField(primary_key=True)  # "<table>/<key>"
    table = me.StringField(required=True)
    key = me.StringField(required=True)
    data = me.DictField(required=True)
    loaded = me.DateTimeField(required=True)
    meta = {"collection": COLLECTION, "auto_create_index": False}


def _digest(tables: dict[str, dict[str, dict[str, Any]]]) -> str:
    return hashlib.sha256(json.dumps(tables, sort_keys=True).encode()).hexdigest()


def load(db: Database, site_dir: Path | None = None) -> Knowledge:
    """Write the tables to the database (when they changed) and build from what it holds."""
    tables = read_tables(site_dir)
    digest = _digest(tables)
    coll = db[COLLECTION]
    marker = coll.find_one({"_id": DIGEST_ID})
    if marker is None or marker.get("data", {}).get("digest") != digest:
        now = datetime.now(UTC)
        ops = []
        for table, records in tables.items():
            for key, data in records.items():
                record = KnowledgeRecord(
                    id=f"{table}/{key}", table=table, key=key, data=data, loaded=now
                )
                record.validate()
                ops.append(ReplaceOne({"_id": record.id}, record.to_mongo().to_dict(), upsert=True))
        for start in range(0, len(ops), 500):
            coll.bulk_write(ops[start : start + 500], ordered=False)
        keep = {op._filter["_id"] for op in ops}
        stale = [d["_id"] for d in coll.find({}, {"_id": 1}) if d["_id"] not in keep]
        stale = [s for s in stale if s != DIGEST_ID]
        if stale:
            coll.delete_many({"_id": {"$in": stale}})
        coll.replace_one(
            {"_id": DIGEST_ID},
            {"_id": DIGEST_ID, "table": "", "key": "", "data": {"digest": digest}, "loaded": now},
            upsert=True,
        )
    stored: dict[str, dict[str, dict[str, Any]]] = {}
    for doc in coll.find({"_id": {"$ne": DIGEST_ID}}):
        stored.setdefault(doc["table"], {})[doc["key"]] = doc["data"]
    return build(stored)
