"""`fhirhub serve`: start what is needed, run gunicorn, stop everything we started on exit."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from types import FrameType

import click

from fhirhub.api.auth_guard import check_startup
from fhirhub.bootstrap import prepare_database_contents
from fhirhub.config import Settings
from fhirhub.embedded.fhir_package import ensure_fhir_package
from fhirhub.embedded.ports import port_in_use
from fhirhub.fhir.errors import ConfigurationError
from fhirhub.hub import Hub
from fhirhub.runtime import start_database, unwind_on_sigterm

HTTP_THREADS = 8


def serve(settings: Settings) -> None:
    unwind_on_sigterm()
    if port_in_use(settings.port, settings.host):
        raise ConfigurationError(
            f"port {settings.port} is already in use on {settings.host}: stop that program "
            "or set FHIRHUB_PORT"
        )
    check_startup(settings)  # FHIRHUB_AUTH=off beyond loopback: refuse before starting
    ensure_fhir_package(settings.cache_dir)
    started_db = start_database(settings)
    children: list[subprocess.Popen[bytes]] = []
    gunicorn_args = gunicorn_command(settings)
    try:
        hub = Hub(settings)
        try:
            prepare_database_contents(hub, seed=settings.seed_on_empty)
            smart_lines = _smart_demo(hub)
        finally:
            hub.close()
        # Its own process group: a terminal's Ctrl-C reaches only us, and gunicorn hears one
        # SIGTERM from _stop. A gthread worker that gets a second signal while shutting
        # down deadlocks in ThreadPoolExecutor.shutdown (seen: orphaned workers after
        # Ctrl-C), and killpg at the end leaves no worker behind.
        children.append(subprocess.Popen(gunicorn_args, start_new_session=True))
        if settings.start_worker:
            # The notification worker delivers what the web processes commit to the outbox.
            children.append(subprocess.Popen([sys.executable, "-m", "fhirhub.cli", "worker"]))
        click.echo(f"fhirhub serving {settings.fhir_base} (Ctrl-C stops it)", err=True)
        for line in smart_lines:
            click.echo(line, err=True)
        _wait(children)
    finally:
        _stop(children, gunicorn_args)
        if started_db is not None:
            started_db.stop()


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


def _wait(children: list[subprocess.Popen[bytes]]) -> None:
    stopping = False

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    while not stopping:
        if any(child.poll() is not None for child in children):
            time.sleep(0.5)  # Ctrl-C reaches gunicorn too; it may exit before we see SIGINT
            if stopping:
                return
            raise ConfigurationError("a server process exited unexpectedly; see the log above")
        time.sleep(0.2)


def _stop(children: list[subprocess.Popen[bytes]], gunicorn_args: list[str]) -> None:
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
        if child.args == gunicorn_args:
            # gunicorn's workers, if its master left any (its own group, see serve()).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)
