"""Document shapes of the resource store (kept out of the FHIR JSON itself).

One collection, `resources`, holds two kinds of document:
- the current version of each resource, keyed "Type/id" (a read by id is an _id lookup),
  with its type in `t` and its search index fields (`s_*`);
- every version ("version documents"), keyed "Type/id/version", with the type in `ht`
  instead of `t`. Every search filters on `t`, so versions never match a search. They
  double as the transactional outbox: a version is written in one insert together with its
  delivery state (`pub`), so no change can exist without its notification event.

Why one collection: a create writes its version and its current document in one insert
command, which costs one round trip instead of two (measured: 666 creates/s as two
inserts, 1,134/s as one; a single plain insert is 1,030-1,219/s). It is not atomic:
FerretDB inserts the documents one by one, so when the database refuses the current
document the version is already in; the store removes it again (version_writes.py
`_insert_new`).
Databases made before this keep their versions in a `history` collection until
`merge_history` (storage/migrations.py) moves them.

The resource itself is stored as JSON text (`res`), not as a nested document: nothing ever
queries inside it (searches use the `s_*` index fields), and on FerretDB a nested resource
costs a BSON->JSONB conversion of every element on each write and back on each read. As
text, inserting Synthea resources went from 2,334 to 12,919 documents/s (bench notes in the
README). Documents written before this change hold a nested `res`; reads accept both.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from fhirhub.fhir.search.extract import EXTENTS, KEYS
from fhirhub.fhir.search.idorder import order_keys
from fhirhub.fhir.search.keys import DATE_KEYS, KEY_FIELDS, ORDER_KEYS, updated_keys

RESOURCES = "resources"
LEGACY_HISTORY = "history"  # where versions lived before they moved into RESOURCES
TRANSACTIONS = "transactions"
# The type field of a version document; a current document has `t` instead.
VERSION_TYPE = "ht"

# Outbox states of a history document. A version written by a transaction also carries
# `txn`; it stays invisible (to vread, history and the worker) while that transaction's log
# record exists, so committing is one delete, not one update per version.
PUB_PENDING = 0  # waiting for the delivery worker
PUB_DONE = 1

# A resource's search index as the matcher sees it: one `s_<code>` field per entry.
INDEX_PREFIX = "s_"
# ... and as stored: one JSON text (`ix`), read back into `s_*` fields. Nothing queries it
# in the database: searches reach candidates through the key fields (fhir/search/keys.py),
# and FerretDB converts a text in one piece where the former `s_*` arrays cost a
# conversion per element on every read and write.
INDEX_TEXT = "ix"
STORED_INDEX_FIELDS = frozenset((INDEX_TEXT, *KEY_FIELDS))


def index_fields(index: Mapping[str, Any]) -> dict[str, Any]:
    """A resource's search index as the top-level `s_*` fields the matcher reads."""
    return {INDEX_PREFIX + k: v for k, v in index.items() if k not in (KEYS, EXTENTS)}


def stored_index(
    resource_type: str,
    resource_id: str,
    index: Mapping[str, Any],
    moment: datetime,
    deleted: bool,
) -> dict[str, Any]:
    """The index and search key fields of a current document. A deleted resource has none,
    so no search key ever selects it."""
    if deleted:
        return {}
    plain = {k: v for k, v in index.items() if k not in (KEYS, EXTENTS)}
    fields: dict[str, Any] = {INDEX_TEXT: encode_index(plain)} if plain else {}
    for field, keys in (index.get(KEYS) or {}).items():
        fields[field] = list(keys)
    fields[DATE_KEYS] = [*fields.get(DATE_KEYS, []), *updated_keys(moment)]
    fields[ORDER_KEYS] = order_keys(resource_type, resource_id)
    return fields


def encode_index(index: Mapping[str, Any]) -> str:
    return orjson.dumps(index).decode()


def decode_index(text: str) -> dict[str, Any]:
    index: dict[str, Any] = orjson.loads(text)
    for key, value in index.items():
        if isinstance(value, str) and (key.endswith("__lo") or key.endswith("__hi")):
            index[key] = datetime.fromisoformat(value)
    return index


def with_index(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored current document with its index as `s_*` fields (in place)."""
    text = doc.pop(INDEX_TEXT, None)
    if isinstance(text, str):
        doc.update(index_fields(decode_index(text)))
    return doc


def resource_key(resource_type: str, resource_id: str) -> str:
    return f"{resource_type}/{resource_id}"


def version_key(resource_type: str, resource_id: str, version: int) -> str:
    return f"{resource_type}/{resource_id}/{version}"


def version_view(doc: dict[str, Any]) -> dict[str, Any]:
    """A version document with its type also under `t`, the shape notification code reads."""
    if VERSION_TYPE in doc and "t" not in doc:
        doc["t"] = doc[VERSION_TYPE]
    return doc


def versions_filter(query: Mapping[str, Any]) -> dict[str, Any]:
    """`query` (written with `t` for the type) restricted to version documents."""
    out = {k: v for k, v in query.items() if k != "t"}
    out[VERSION_TYPE] = query.get("t", {"$exists": True})
    return out


def encode_resource(resource: dict[str, Any] | None) -> str | None:
    if resource is None:
        return None
    try:
        return orjson.dumps(resource).decode()
    except TypeError:
        # orjson refuses integers beyond 64 bits, which JSON (and FHIR decimal) allows.
        return json.dumps(resource, ensure_ascii=False, separators=(",", ":"))


def decode_resource(stored: Any) -> dict[str, Any] | None:
    if stored is None or isinstance(stored, dict):
        return stored
    resource: dict[str, Any] = orjson.loads(stored)
    return resource


def decoded(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored document with its resource and index decoded in place (search results)."""
    if "res" in doc:
        doc["res"] = decode_resource(doc["res"])
    return with_index(doc)


@dataclass(frozen=True)
class StoredVersion:
    """One version of a resource as the service layer sees it."""

    resource_type: str
    resource_id: str
    version: int
    last_updated: datetime
    deleted: bool
    resource: dict[str, Any] | None
    method: str = "PUT"  # POST (create), PUT (update), DELETE, PATCH

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'

    @classmethod
    def from_doc(cls, doc: dict[str, Any], resource: Any = None) -> StoredVersion:
        """`resource`: the decoded body when the caller has it (just written)."""
        return cls(
            resource_type=doc["t"] if "t" in doc else doc[VERSION_TYPE],
            resource_id=doc["rid"],
            version=doc["v"],
            last_updated=doc["ts"],
            deleted=bool(doc.get("del")),
            resource=resource if resource is not None else decode_resource(doc.get("res")),
            method=doc.get("m", "PUT"),
        )


def live_resource(stored: StoredVersion | None) -> dict[str, Any] | None:
    """The resource of a current version, None when absent or deleted."""
    return stored.resource if stored is not None and not stored.deleted else None
