"""Autovacuum for the outbox and delivery tables of the embedded PostgreSQL (FerretDB).

Every event is inserted with `pub: 0` and every delivery as pending, and each is updated
once. Until vacuum removes the old row versions, FerretDB's GIN lookups for `pub: 0` and
`st: pending` visit every one of them, so the cost of the worker's hot queries grows with
everything written since the last vacuum. Measured at 50 writes/s with default autovacuum
(1 min naptime, cost-throttled), which never ran in three 20 s runs: notification latency
p50 0.45 s -> 3.2 s -> 6.7 s; after a manual VACUUM, 0.09 s. Hence a short naptime (a
start-up flag, embedded/postgres.py) and row-count thresholds on these few tables.
MongoDB (production) needs none of this.

The outbox flags now live on the version documents in `resources`, the largest table, which
keeps PostgreSQL's default thresholds (vacuum at 20% dead rows): tight ones would vacuum
that table and its 15 GIN indexes every few seconds during a bulk load. Measured at 136k
rows: an outbox poll took 23-34 ms with 24k dead rows, 5-14 ms after a VACUUM.
"""

from __future__ import annotations

from fhirhub.embedded.pg_tables import collection_tables
from fhirhub.embedded.postgres import psql

HOT_COLLECTIONS = ("deliveries", "worker_leases")
TABLE_OPTIONS = (
    "autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 500, "
    "autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 2000, "
    "autovacuum_vacuum_cost_delay = 0"
)


def tune_autovacuum(port: int, db_name: str) -> None:
    tables = collection_tables(port, db_name)
    statements = [
        f'alter table "{db_name}"."{tables[c]}" set ({TABLE_OPTIONS})'
        for c in HOT_COLLECTIONS
        if c in tables
    ]
    if statements:
        psql(port, "; ".join(statements))
