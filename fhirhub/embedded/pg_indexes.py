"""GIN expression indexes that let FerretDB's pushed-down filters use an index.

FerretDB 1.24 (postgresql handler) turns an equality filter on a top-level field into
`(_jsonb -> 'field') @> '<value>'`, but the indexes it creates itself are btree indexes on
`(_jsonb -> 'field')`, which containment cannot use: every lookup, even by _id, becomes a
sequential scan (133 ms at 21k Synthea resources). A GIN index on the same expression turns
that into an index scan (0.08 ms). Only the embedded database needs this; MongoDB uses its
own indexes.
"""

from __future__ import annotations

import hashlib
import re

from fhirhub.embedded.pg_tables import collection_tables
from fhirhub.embedded.postgres import psql

_SAFE = re.compile(r"^[A-Za-z0-9_]+$")
# New index entries wait in a GIN index's pending list until vacuum (or a full list) merges
# them, and every lookup scans that list whole. With PostgreSQL's 4 MB a search key lookup
# took 0.78 ms before a vacuum and 0.03 ms after; a short list keeps lookups near the
# latter (an insert that fills it merges it).
PENDING_LIST_KB = 256


def ensure_gin_indexes(
    port: int,
    db_name: str,
    fields: dict[str, list[str]],
    retired: dict[str, list[str]] | None = None,
) -> int:
    """Create missing GIN indexes and drop those of `retired` fields; returns how many were
    created. Names are ours, not input."""
    tables = collection_tables(port, db_name)
    statements = []
    drops = []
    for collection, names in (retired or {}).items():
        table = tables.get(collection)
        for field in names if table else []:
            digest = hashlib.sha1(f"{table}.{field}".encode()).hexdigest()[:10]
            drops.append(f'drop index if exists "{db_name}".fhirhub_pgin_{digest}')
    for collection, names in fields.items():
        table = tables.get(collection)
        if not table:
            continue
        for field in names:
            if not _SAFE.match(field):
                continue
            expression = f"(_jsonb -> '{field}')"
            # Partial: documents without the field (a version has no s_* fields, a current
            # document no `pub`) add no index entries. PostgreSQL still uses the index for
            # `expr @> value`, which implies `expr is not null`. Measured: +7% inserts.
            digest = hashlib.sha1(f"{table}.{field}".encode()).hexdigest()[:10]
            statements += [
                f'drop index if exists "{db_name}".fhirhub_gin_{digest}',  # the full one
                f'create index if not exists fhirhub_pgin_{digest} on "{db_name}"."{table}" '
                f"using gin ({expression} jsonb_path_ops) where {expression} is not null",
                f'alter index "{db_name}".fhirhub_pgin_{digest} '
                f"set (gin_pending_list_limit = {PENDING_LIST_KB})",
            ]
    if statements or drops:
        psql(port, "; ".join(statements + drops))
    return len(statements) // 3
