"""Database preparation before serving: indexes, unfinished transactions, seed data."""

from __future__ import annotations

import logging

from fhirhub.hub import Hub
from fhirhub.storage.transactions import recover

log = logging.getLogger(__name__)


def prepare_database_contents(hub: Hub, seed: bool) -> None:
    hub.store.ensure_indexes()
    recovered = recover(hub.store)
    if recovered:
        log.warning("finished %d transactions left behind by a stopped process", recovered)
    if seed and hub.db["resources"].estimated_document_count() == 0:
        from fhirhub.seed_loader import load_default_seed

        load_default_seed(hub)
