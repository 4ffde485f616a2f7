"""Command-line processes that need the database: start what is missing, stop it after."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

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


def unwind_on_sigterm() -> None:
    """SIGTERM (what process managers send) unwinds like Ctrl-C, so finally blocks stop what
    was started. Its default action would end the process on the spot and leave the database
    processes, which run in sessions of their own, behind. Long-running loops (serve's wait,
    the worker) install their own handlers once they run."""

    def _interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)


@contextmanager
def running_hub(settings: Settings, long_running: bool = False) -> Iterator[Hub]:
    """`long_running`: the command loops over many requests' worth of work (worker, import,
    seed, reindex), so the heap is settled first (0.4 s, not worth it for a token)."""
    from fhirhub.bootstrap import prepare_database_contents

    unwind_on_sigterm()
    ensure_fhir_package(settings.cache_dir)
    started = start_database(settings)
    hub = Hub(settings)
    try:
        prepare_database_contents(hub, seed=False)
        if long_running:
            from fhirhub import heap

            heap.settle(hub)
        yield hub
    finally:
        hub.close()
        if started is not None:
            started.stop()
