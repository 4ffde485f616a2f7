"""The `fhirhub` command: serve, db start|stop|status, setup (and more as features land)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from fhirhub.auth.cli import client, token, user
from fhirhub.config import Settings
from fhirhub.fhir.errors import HubError

F = TypeVar("F", bound=Callable[..., Any])


def one_line_errors(func: F) -> F:
    """Set-up problems are reported as one actionable line, never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except HubError as exc:
            click.echo(f"fhirhub: error: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


@click.group()
def main() -> None:
    """fhirhub: FHIR R4 server and care-coordination hub."""


@main.command()
@one_line_errors
def setup() -> None:
    """Fetch the FHIR R4 definitions and build the embedded database (idempotent)."""
    from fhirhub.embedded.ferretdb import ensure_ferretdb
    from fhirhub.embedded.fhir_package import ensure_fhir_package

    settings = Settings.from_env()
    click.echo(f"FHIR definitions: {ensure_fhir_package(settings.cache_dir)}")
    if settings.uses_embedded_db:
        click.echo(f"FerretDB: {ensure_ferretdb(settings.tools_dir)}")


@main.command()
@click.option("--seed/--no-seed", default=None, help="Load seed data into an empty DB.")
@one_line_errors
def serve(seed: bool | None) -> None:
    """Run the FHIR API under gunicorn, with the embedded database unless MONGODB_URI is set."""
    from fhirhub.launcher import serve as run_server

    settings = Settings.from_env()
    if seed is not None:
        settings = settings.with_overrides(seed_on_empty=seed)
    run_server(settings)


@main.command()
@click.option("--threads", type=click.IntRange(1, 64), default=None, help="Delivery threads.")
@click.option("--supervised", is_flag=True, hidden=True, help="Run by serve: never start a DB.")
@one_line_errors
def worker(threads: int | None, supervised: bool) -> None:
    """Deliver notifications (subscriptions, care teams) from the outbox until stopped."""
    import logging

    from fhirhub.runtime import running_hub
    from fhirhub.worker.runner import NotificationWorker

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    settings = Settings.from_env()
    with running_hub(settings, long_running=True, start_db=not supervised) as hub:
        NotificationWorker(hub, threads).run_until_signalled()


@main.group()
def db() -> None:
    """Manage the embedded FerretDB database (data under ./var)."""


def _embedded() -> Any:
    from fhirhub.embedded.database import EmbeddedDatabase

    settings = Settings.from_env()
    if not settings.uses_embedded_db:
        raise HubError("MONGODB_URI is set, so no embedded database is used")
    return EmbeddedDatabase.from_settings(settings)


@db.command("start")
@one_line_errors
def db_start() -> None:
    database = _embedded()
    started = database.start()
    click.echo(
        f"{'started' if started else 'already running'}: {database.uri} ({database.backend})"
    )


@db.command("stop")
@one_line_errors
def db_stop() -> None:
    database = _embedded()
    database.stop()
    click.echo("stopped")


@db.command("status")
@one_line_errors
def db_status() -> None:
    status = _embedded().status()
    state = "running" if status.up else "stopped"
    click.echo(f"{state}: {status.uri} backend={status.backend} pid={status.ferretdb_pid}")
    sys.exit(0 if status.up else 3)


@main.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--state",
    "state_file",
    type=click.Path(path_type=Path),
    default=None,
    help="Progress file for resuming (default: var/import-state.json).",
)
@click.option("--restart", is_flag=True, help="Ignore earlier progress and import everything.")
@one_line_errors
def import_command(paths: tuple[Path, ...], state_file: Path | None, restart: bool) -> None:
    """Import transaction/batch Bundles, single resources and NDJSON files or directories."""
    import time

    from rich.console import Console

    from fhirhub.importer.console import print_summary, run_import
    from fhirhub.importer.sources import discover
    from fhirhub.importer.state import ImportState
    from fhirhub.runtime import running_hub
    from fhirhub.service.bundles import BundleService

    settings = Settings.from_env()
    try:
        files = discover(list(paths))
    except FileNotFoundError as exc:
        raise HubError(str(exc)) from None
    state_path = state_file or settings.var_dir / "import-state.json"
    if restart:
        state_path.unlink(missing_ok=True)
    console = Console(stderr=True)
    with running_hub(settings, long_running=True) as hub:
        started = time.monotonic()
        results = run_import(
            BundleService(hub.resources, settings.fhir_base, hub.search.search_for_bundle),
            files,
            ImportState(state_path),
            console,
        )
        print_summary(results, time.monotonic() - started, console)


@main.command()
@click.option(
    "--patients",
    type=click.IntRange(1, 1_000_000),
    default=None,
    help="How many patients (default: the small default set).",
)
@click.option(
    "--seed",
    "seed_value",
    type=int,
    default=42,
    show_default=True,
    help="Random seed; the same seed gives the same data.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the transaction bundles to this directory instead of loading them.",
)
@one_line_errors
def seed(patients: int | None, seed_value: int, out: Path | None) -> None:
    """Generate realistic seed data (deterministic) and load it, or write it as files."""
    import time

    from fhirhub.seed import DEFAULT_PATIENTS, write_bundles

    count = patients or DEFAULT_PATIENTS
    settings = Settings.from_env()
    if out is not None:
        files = write_bundles(out, count, seed_value, None)
        click.echo(f"wrote {files} bundles for {count} patients to {out}")
        return
    from fhirhub.runtime import running_hub
    from fhirhub.seed_loader import load_seed

    with running_hub(settings, long_running=True) as hub:
        started = time.monotonic()
        written = load_seed(hub, count, seed=seed_value)
        elapsed = time.monotonic() - started
        click.echo(
            f"loaded {written} resources for {count} patients in {elapsed:.1f} s "
            f"({written / max(elapsed, 1e-6):.0f} resources/s)"
        )


@main.command()
@click.option("--type", "resource_type", default=None, help="Only this resource type.")
@click.option("--restart", is_flag=True, help="Start over instead of resuming a stopped run.")
@one_line_errors
def reindex(resource_type: str | None, restart: bool) -> None:
    """Recompute search index fields (after SearchParameter resources change, or to migrate
    an older database). Works in batches; a stopped run resumes where it got to."""
    from fhirhub.runtime import running_hub
    from fhirhub.storage.reindex_state import ProgressPrinter

    with running_hub(Settings.from_env(), long_running=True) as hub:
        hub.custom_parameters.force()
        printer = ProgressPrinter(click.echo)
        changed = hub.store.reindex(
            resource_type,
            hub.extractor.extract,
            types=hub.definitions.resource_types,
            progress=printer,
            restart=restart,
        )
        click.echo(f"reindexed: {changed} documents changed ({printer.summary()})")


# SMART authorization: fhirhub token|client|user (fhirhub/auth/cli.py)
main.add_command(token)
main.add_command(client)
main.add_command(user)

if __name__ == "__main__":
    main()
