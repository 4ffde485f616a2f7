"""`fhirhub serve`: start what is needed, run gunicorn, keep it all running (supervision/),
stop everything we started on exit."""

from __future__ import annotations

import logging
import signal
import sys
import time
from types import FrameType

import click

from fhirhub.api.auth.guard import check_startup
from fhirhub.bootstrap import prepare_database_contents
from fhirhub.config import Settings
from fhirhub.embedded.fhir_package import ensure_fhir_package
from fhirhub.embedded.ports import port_in_use
from fhirhub.fhir.errors import ConfigurationError
from fhirhub.hub import Hub
from fhirhub.runtime import start_database, unwind_on_sigterm
from fhirhub.supervision.board import Board, board_path
from fhirhub.supervision.parts import FerretdbPart, PostgresPart, ProcessPart
from fhirhub.supervision.reaper import become_subreaper
from fhirhub.supervision.supervisor import CHECK_S, SUPERVISOR_LOG, Supervisor

HTTP_THREADS = 8


def serve(settings: Settings) -> None:
    unwind_on_sigterm()
    _log_supervision()
    become_subreaper()  # before PostgreSQL starts: its postmaster is then adopted by us
    if port_in_use(settings.port, settings.host):
        raise ConfigurationError(
            f"port {settings.port} is already in use on {settings.host}: stop that program "
            "or set FHIRHUB_PORT"
        )
    check_startup(settings)  # FHIRHUB_AUTH=off beyond loopback: refuse before starting
    ensure_fhir_package(settings.cache_dir)
    started_db = start_database(settings)
    supervisor = Supervisor(Board(board_path(settings.var_dir)))
    try:
        hub = Hub(settings)
        try:
            prepare_database_contents(hub, seed=settings.seed_on_empty)
            smart_lines = _smart_demo(hub)
        finally:
            hub.close()
        if started_db is not None:  # a database someone else started is theirs to watch
            if started_db.postgres is not None:
                supervisor.watch(PostgresPart(started_db))
            supervisor.watch(FerretdbPart(started_db))
        supervisor.watch(ProcessPart("api", gunicorn_command(settings)).start())
        if settings.start_worker:
            # The notification worker delivers what the web processes commit to the outbox.
            # --supervised: it waits for the database this process restarts, never starts one.
            worker = [sys.executable, "-m", "fhirhub.cli", "worker", "--supervised"]
            supervisor.watch(ProcessPart("worker", worker, stop_timeout=35).start())
        click.echo(f"fhirhub serving {settings.fhir_base} (Ctrl-C stops it)", err=True)
        for line in smart_lines:
            click.echo(line, err=True)
        _supervise(supervisor)
    finally:
        supervisor.stop_all()
        if started_db is not None:
            started_db.stop()


def _log_supervision() -> None:
    """What the supervisor does (deaths, restarts) goes to stderr with a time stamp."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s fhirhub serve: %(message)s"))
    logger = logging.getLogger(SUPERVISOR_LOG)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def gunicorn_command(settings: Settings, app: str = "fhirhub.app:create_app()") -> list[str]:
    access_log = ["--access-logfile", "-"] if settings.access_log else []
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"{settings.host}:{settings.port}",
        "--workers",
        str(settings.web_workers),
        "--worker-class",
        "gthread",
        # An open Subscription websocket holds a thread for its lifetime: 8 for requests,
        # plus one per socket allowed (the web process refuses sockets beyond that).
        "--threads",
        str(HTTP_THREADS + settings.websocket_max),
        # Lets open websockets close when a worker is told to stop, and makes the errors
        # gunicorn answers itself (414, 431, 400) OperationOutcomes.
        "--config",
        "python:fhirhub.gunicorn_hooks",
        # FHIR searches make long URLs: gunicorn's largest request line instead of 4094.
        "--limit-request-line",
        str(settings.max_url_bytes),
        *access_log,
        "--log-level",
        "warning",
        app,
    ]


def _smart_demo(hub: Hub) -> list[str]:
    """Development servers get a demo SMART app and instructions for a curl token."""
    if not hub.settings.auth:
        return ["WARNING: FHIRHUB_AUTH=off: the API accepts requests without authorization"]
    if not hub.settings.uses_embedded_db:
        return []
    from fhirhub.auth.demo import ensure_demo

    return ensure_demo(hub.auth)


def _supervise(supervisor: Supervisor) -> None:
    stopping = False

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    while not stopping:
        supervisor.check()
        time.sleep(CHECK_S)
