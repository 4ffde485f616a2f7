"""Autovacuum for the outbox and delivery tables of the embedded PostgreSQL (FerretDB).

Every event is inserted with `pub: 0` and every delivery as pending, and each is updated
once. Until vacuum removes the old row versions, FerretDB's GIN lookups for `pub: 0` and
`st: pending` visit every one of them, so the cost of the worker's hot queries grows with
everything written since the last vacuum. Measured at 50 writes/s with default autovacuum
(1 min naptime, cost-throttled), which never ran in three 20 s runs: notification latency
p50 0.45 s -> 3.2 s -> 6.7 s; after a manual VACUUM, 0.09 s. Hence a short naptime and
row-count thresholds on these few tables. MongoDB (production) needs none of this.
"""

from __future__ import annotations

import re
import subprocess

from fhirhub.embedded.postgres import PG_DATABASE, PG_USER, bin_dir

HOT_COLLECTIONS = ("history", "deliveries", "worker_leases")
NAPTIME = "5s"
TABLE_OPTIONS = (
    "autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 500, "
    "autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 2000, "
    "autovacuum_vacuum_cost_delay = 0"
)
_SAFE = re.compile(r"^[A-Za-z0-9_]+$")


def _psql(port: int, sql: str) -> str:
    connection = ["-h", "127.0.0.1", "-p", str(port), "-U", PG_USER, "-d", PG_DATABASE]
    proc = subprocess.run(
        [str(bin_dir() / "psql"), *connection, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip())
    return proc.stdout


def tune_autovacuum(port: int, db_name: str) -> None:
    if not _SAFE.match(db_name):
        return
    # ALTER SYSTEM cannot share a transaction with other statements: one call each.
    _psql(port, f"alter system set autovacuum_naptime = '{NAPTIME}'")
    _psql(port, "select pg_reload_conf()")
    rows = _psql(
        port,
        f"select _jsonb->>'_id', _jsonb->>'table' from \"{db_name}\"._ferretdb_database_metadata",
    )
    tables = dict(line.split("|", 1) for line in rows.splitlines() if "|" in line)
    statements = [
        f'alter table "{db_name}"."{tables[c]}" set ({TABLE_OPTIONS})'
        for c in HOT_COLLECTIONS
        if c in tables and _SAFE.match(tables[c])
    ]
    if statements:
        _psql(port, "; ".join(statements))
