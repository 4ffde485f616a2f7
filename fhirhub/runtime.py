"""Command-line processes that need the database: start what is missing, stop it after."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fhirhub.config import Settings
from fhirhub.embedded.database import EmbeddedDatabase
from fhirhub.embedded.fhir_package import ensure_fhir_package
from fhirhub.hub import Hub
from fhirhub.storage.mongo import connect, redact, require_reachable


def start_database(settings: Settings) -> EmbeddedDatabase | None:
    """Returns the embedded database when this call started it (the caller stops it)."""
    if not settings.uses_embedded_db:
        client = connect(settings)
        try:
            require_reachable(client, redact(settings.effective_mongodb_uri))
        finally:
            client.close()
        return None
    database = EmbeddedDatabase.from_settings(settings)
    try:
        return database if database.start() else None
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM (see launcher.py) halfway through: PostgreSQL may already run.
        database.stop()
        raise


@contextmanager
def running_hub(settings: Settings) -> Iterator[Hub]:
    from fhirhub.bootstrap import prepare_database_contents

    ensure_fhir_package(settings.cache_dir)
    started = start_database(settings)
    hub = Hub(settings)
    try:
        prepare_database_contents(hub, seed=False)
        from fhirhub import heap

        heap.settle(hub)  # import, worker, seed: long loops over parsed resources
        yield hub
    finally:
        hub.close()
        if started is not None:
            started.stop()
