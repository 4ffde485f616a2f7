"""Database preparation before serving: indexes, unfinished transactions, seed data."""

from __future__ import annotations

import logging

from fhirhub.fhir.search.keys import KEY_FIELDS
from fhirhub.hub import Hub
from fhirhub.storage.deliveries import DeliveryStore
from fhirhub.storage.delivery_leases import LeaseStore
from fhirhub.storage.migrations import merge_history
from fhirhub.storage.outbox import OutboxStore
from fhirhub.storage.search_stats import LAYOUT, LAYOUT_VERSION, STATS
from fhirhub.storage.slot_claims import SlotClaims
from fhirhub.storage.transactions import recover
from fhirhub.storage.websockets import SocketStore

log = logging.getLogger(__name__)


# Fields used in equality filters, per collection (see embedded/pg_indexes.py).
PUSHDOWN_FIELDS = {
    "resources": [
        "_id",
        "t",
        "rid",
        # search keys (fhir/search/keys.py): every search reaches its candidates by these
        *KEY_FIELDS,
        # version documents (documents.py), and their history keys (storage/history_walk.py)
        "ht",
        "hk",
        "txn",
        "pub",
    ],
    "transactions": ["_id"],
    "deliveries": ["_id", "sub", "st"],
    "worker_leases": ["_id", "name"],
    "timer_jobs": ["_id", "st", "dm", "key"],
    "timer_keys": ["_id"],
    "timer_leases": ["_id", "name"],
    # every Appointment write reads its owner's claims and probes keys by _id
    "slot_claims": ["_id", "owner"],
    "slot_claim_ends": ["_id"],
}


# Index fields that searches no longer query (they live in the stored index text now).
RETIRED_FIELDS = {
    "resources": [
        "s_identifier",
        "s_comp",
        "s_patient",
        "s_subject",
        "s_code",
        "s_category",
        "s_encounter",
        "s_status",
    ]
}


def tune_embedded_database(hub: Hub) -> None:
    settings = hub.settings
    if settings.uses_embedded_db and settings.db_backend == "postgresql":
        from fhirhub.embedded.pg_counters import COUNTS, ensure_counters
        from fhirhub.embedded.pg_indexes import ensure_gin_indexes
        from fhirhub.embedded.pg_tables import use_lz4
        from fhirhub.storage.delivery_vacuum import tune_autovacuum

        ensure_gin_indexes(settings.pg_port, settings.db_name, PUSHDOWN_FIELDS, RETIRED_FIELDS)
        ensure_counters(
            settings.pg_port,
            settings.db_name,
            lambda: hub.db.create_collection(COUNTS),
        )
        use_lz4(settings.pg_port, settings.db_name)
        tune_autovacuum(settings.pg_port, settings.db_name)


def check_layout(hub: Hub) -> None:
    """A database written before search keys existed answers searches only after
    `fhirhub reindex` has migrated it: say so loudly (a new database is marked at once)."""
    stats = hub.db[STATS]
    marker = stats.find_one({"_id": LAYOUT})
    if marker is not None and marker.get("v", 0) >= LAYOUT_VERSION:
        return
    if hub.db["resources"].find_one({}, {"_id": 1}) is None:
        stats.update_one({"_id": LAYOUT}, {"$set": {"v": LAYOUT_VERSION}}, upsert=True)
        return
    log.error(
        "this database was written by an earlier fhirhub: searches and histories miss its "
        "resources until `fhirhub reindex` has run (it migrates the stored index once)"
    )


def prepare_database_contents(hub: Hub, seed: bool) -> None:
    merge_history(hub.db)
    hub.store.ensure_indexes()
    DeliveryStore(hub.db).ensure_indexes()
    LeaseStore(hub.db).ensure_indexes()
    SocketStore(hub.db).ensure_indexes()
    hub.timer_store.ensure_indexes()
    SlotClaims(hub.db).ensure_indexes()
    # Medication knowledge goes into the database at start: a broken site file fails the
    # start, not the first prescription.
    _ = hub.medication_knowledge
    tune_embedded_database(hub)
    check_layout(hub)
    recovered = recover(hub.store)
    if recovered:
        log.warning("finished %d transactions left behind by a stopped process", recovered)
    if seed and hub.db["resources"].estimated_document_count() == 0:
        from fhirhub.seed_loader import load_default_seed

        load_default_seed(hub)
        # Seed data is a bulk load of history, not news: its Endpoints are placeholders.
        OutboxStore(hub.db).publish_all_pending()
    from fhirhub.monitoring.wiring import install_knowledge

    install_knowledge(hub)  # after the seed check, which needs an empty database
