"""Command-line processes that need the database: start what is missing, stop it after."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from pymongo.errors import PyMongoError

from fhirhub.config import Settings
from fhirhub.embedded.database import EmbeddedDatabase
from fhirhub.embedded.fhir_package import ensure_fhir_package
from fhirhub.fhir.errors import ConfigurationError
from fhirhub.hub import Hub
from fhirhub.storage.mongo import connect, redact, require_reachable

WAIT_FOR_DATABASE_S = 60.0


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


def prepare_when_available(hub: Hub, timeout_s: float) -> None:
    """For a process whose database another process runs and restarts (serve's worker):
    wait for it, also when it goes away again in the middle of the preparation."""
    from fhirhub.bootstrap import prepare_database_contents

    deadline = time.monotonic() + timeout_s
    while True:
        problem = hub.database_problem()
        if problem is None:
            try:
                prepare_database_contents(hub, seed=False)
                return
            except (PyMongoError, RuntimeError) as error:  # RuntimeError: psql set-up
                problem = str(error).split("\n")[0][:200]
        if time.monotonic() >= deadline:
            raise ConfigurationError(f"the database did not come back: {problem}")
        time.sleep(0.5)


@contextmanager
def running_hub(
    settings: Settings, long_running: bool = False, start_db: bool = True
) -> Iterator[Hub]:
    """`long_running`: the command loops over many requests' worth of work (worker, import,
    seed, reindex), so the heap is settled first (0.4 s, not worth it for a token).
    `start_db` False: the database is someone else's to start (supervised worker)."""
    from fhirhub.bootstrap import prepare_database_contents

    unwind_on_sigterm()
    ensure_fhir_package(settings.cache_dir)
    started = start_database(settings) if start_db else None
    hub = Hub(settings)
    try:
        if start_db:
            prepare_database_contents(hub, seed=False)
        else:
            prepare_when_available(hub, WAIT_FOR_DATABASE_S)
        if long_running:
            from fhirhub import heap

            heap.settle(hub)
        yield hub
    finally:
        hub.close()
        if started is not None:
            started.stop()
