"""The PostgreSQL tables behind the embedded FerretDB's collections, and their storage.

FerretDB keeps each collection in a table of its own (named in the database's metadata
table), one `_jsonb` column per document. Set-up code here tunes those tables directly;
MongoDB (production) needs none of it.
"""

from __future__ import annotations

import logging
import re

from fhirhub.embedded.postgres import psql

log = logging.getLogger(__name__)

_SAFE = re.compile(r"^[A-Za-z0-9_]+$")

# Collections whose documents usually exceed PostgreSQL's 2 kB TOAST threshold (a resource
# with its index fields averages 2.7 kB), so that every insert compresses them.
COMPRESSED_COLLECTIONS = ("resources",)


def collection_tables(port: int, db_name: str) -> dict[str, str]:
    """Collection name -> table name, for the names safe to put into SQL."""
    if not _SAFE.match(db_name):
        return {}
    rows = psql(
        port,
        f"select _jsonb->>'_id', _jsonb->>'table' from \"{db_name}\"._ferretdb_database_metadata",
    )
    pairs = (line.split("|", 1) for line in rows.splitlines() if "|" in line)
    return {c: t for c, t in pairs if _SAFE.match(c) and _SAFE.match(t)}


def use_lz4(port: int, db_name: str) -> bool:
    """Compress the large documents with lz4 instead of pglz: pglz_compress was a fifth of
    the PostgreSQL backends' CPU during transaction ingest (perf), and autovacuum's ANALYZE
    decompresses every sampled row once per expression index. Applies to values written
    from now on; older rows stay readable as they are. False when this PostgreSQL was built
    without lz4."""
    tables = collection_tables(port, db_name)
    statements = [
        f'alter table "{db_name}"."{tables[c]}" alter column _jsonb set compression lz4'
        for c in COMPRESSED_COLLECTIONS
        if c in tables
    ]
    if not statements:
        return False
    try:
        psql(port, "; ".join(statements))
    except RuntimeError as exc:
        log.warning("embedded PostgreSQL keeps pglz compression: %s", exc)
        return False
    return True
