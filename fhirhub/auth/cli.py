"""`fhirhub token|client|user`: operator commands for SMART authorization.

They work on the database directly (like `fhirhub import`), so whoever can run them can
already read everything; tokens they issue are still bounded by the client's scopes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

import click

from fhirhub.config import Settings
from fhirhub.fhir.errors import HubError

F = TypeVar("F", bound=Callable[..., Any])


def _errors(func: F) -> F:
    """Same contract as the other commands: one `fhirhub: error:` line, exit status 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (HubError, ValueError) as exc:
            click.echo(f"fhirhub: error: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


@contextmanager
def _auth() -> Iterator[Any]:
    from fhirhub.runtime import running_hub

    with running_hub(Settings.from_env()) as hub:
        yield hub.auth


@click.group()
def token() -> None:
    """Issue access tokens and rotate signing keys."""


@token.command("issue")
@click.option("--client", "client_id", default="fhirhub-cli", show_default=True)
@click.option("--scope", required=True, help="e.g. 'user/*.cruds' or 'patient/*.rs'")
@click.option("--user", default=None, help="act as this user (fhirUser, care teams, admin)")
@click.option("--patient", default=None, help="patient context for patient/ scopes")
@click.option("--ttl", type=click.IntRange(60, 86400), default=None, help="seconds")
@click.option("--json", "as_json", is_flag=True, help="print the whole token response")
@_errors
def issue(
    client_id: str,
    scope: str,
    user: str | None,
    patient: str | None,
    ttl: int | None,
    as_json: bool,
) -> None:
    """Print an access token (for curl: -H "Authorization: Bearer $TOKEN")."""
    with _auth() as auth:
        body = auth.issue_direct(client_id, scope, user=user, patient=patient, ttl=ttl)
    click.echo(json.dumps(body, indent=2) if as_json else body["access_token"])


@token.command("rotate-keys")
@_errors
def rotate_keys() -> None:
    """Sign id_tokens with a new key; the previous one stays published in the JWKS."""
    with _auth() as auth:
        click.echo(f"new signing key: {auth.keys.rotate()}")


@click.group()
def client() -> None:
    """Register and list SMART client applications."""


@client.command("add")
@click.argument("client_id")
@click.option("--kind", type=click.Choice(["public", "symmetric", "asymmetric"]), required=True)
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="exact; repeatable")
@click.option("--scope", required=True, help="the most this client may ever be granted")
@click.option("--jwks", "jwks_file", type=click.Path(exists=True, path_type=Path), default=None)
@click.option(
    "--jwks-url", default=None, help="fetched now and stored (web requests never call out)"
)
@click.option("--launch-uri", default=None, help="the app's EHR launch URL")
@click.option("--name", default="")
@_errors
def add_client(
    client_id: str,
    kind: str,
    redirect_uris: tuple[str, ...],
    scope: str,
    jwks_file: Path | None,
    jwks_url: str | None,
    launch_uri: str | None,
    name: str,
) -> None:
    """Register (or replace) a client; a symmetric client's secret is printed once."""
    jwks = json.loads(jwks_file.read_text()) if jwks_file else None
    if jwks_url:
        import httpx

        jwks = httpx.get(jwks_url, timeout=10).raise_for_status().json()
    with _auth() as auth:
        secret = auth.register_client(
            client_id,
            kind,
            redirect_uris=list(redirect_uris),
            scope=scope,
            name=name,
            jwks=jwks,
            jwks_uri=jwks_url,
            launch_uri=launch_uri,
        )
    click.echo(f"registered {client_id} ({kind})")
    if secret:
        click.echo(f"client secret (shown once): {secret}")


@client.command("list")
@_errors
def list_clients() -> None:
    with _auth() as auth:
        for record in auth.store.clients():
            uris = " ".join(record["redirect_uris"])
            click.echo(f"{record['_id']}\t{record['kind']}\t{record['scope']}\t{uris}")


@client.command("remove")
@click.argument("client_id")
@_errors
def remove_client(client_id: str) -> None:
    with _auth() as auth:
        if not auth.store.remove_client(client_id):
            raise ValueError(f"unknown client {client_id!r}")
    click.echo(f"removed {client_id}")


@client.command("launch")
@click.argument("client_id")
@click.option("--patient", required=True)
@click.option("--encounter", default=None)
@_errors
def launch(client_id: str, patient: str, encounter: str | None) -> None:
    """Create an EHR launch context and print the app's launch URL (valid one hour)."""
    with _auth() as auth:
        record = auth.store.client(client_id)
        if record is None:
            raise ValueError(f"unknown client {client_id!r}")
        launch_id = auth.flow.new_launch(patient, encounter)
        query = urlencode({"iss": auth.settings.fhir_base, "launch": launch_id})
    click.echo(f"{record.get('launch_uri') or '<launch-uri>'}?{query}")


@click.group()
def user() -> None:
    """Manage the hub's users (login for SMART apps)."""


@user.command("add")
@click.argument("username")
@click.option(
    "--fhir-user", default=None, help="Practitioner/ID, PractitionerRole/ID or Patient/ID"
)
@click.option("--admin", is_flag=True, help="unrestricted user/ access and the audit log")
@click.password_option()
@_errors
def add_user(username: str, fhir_user: str | None, admin: bool, password: str) -> None:
    with _auth() as auth:
        auth.add_user(username, password, fhir_user=fhir_user, admin=admin)
    click.echo(f"user {username} saved")


@user.command("list")
@_errors
def list_users() -> None:
    with _auth() as auth:
        for record in auth.store.users():
            role = "admin" if record.get("admin") else ""
            click.echo(f"{record['_id']}\t{record.get('fhir_user') or ''}\t{role}")
