"""MongoDB connection handling (the only place a MongoClient is built)."""

from __future__ import annotations

from datetime import UTC

from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import PyMongoError

from fhirhub.config import Settings
from fhirhub.fhir.errors import ConfigurationError


def connect(settings: Settings) -> MongoClient:
    # Connecting is lazy in pymongo: nothing happens until the first operation.
    return MongoClient(
        settings.effective_mongodb_uri,
        serverSelectionTimeoutMS=settings.db_timeout_ms,
        connectTimeoutMS=settings.db_timeout_ms,
        # A database that stops answering (FerretDB has hung on some bulk writes) must not
        # hold request threads forever: the request fails with 503 instead.
        socketTimeoutMS=settings.db_socket_timeout_ms,
        uuidRepresentation="standard",
        tz_aware=True,
        tzinfo=UTC,
        appname="fhirhub",
    )


# /healthz must answer within a second even when the database is gone: its ping, and the
# probe that tells web processes the database is back, use a client that gives up sooner.
HEALTH_TIMEOUT_MS = 400


def connect_for_health(settings: Settings) -> MongoClient:
    timeout = min(settings.db_timeout_ms, HEALTH_TIMEOUT_MS)
    return MongoClient(
        settings.effective_mongodb_uri,
        serverSelectionTimeoutMS=timeout,
        connectTimeoutMS=timeout,
        socketTimeoutMS=timeout,
        retryReads=False,
        maxPoolSize=2,
        appname="fhirhub-health",
    )


def is_ferretdb(db: Database) -> bool:
    return "ferretdbVersion" in db.client.admin.command("buildInfo")


def ping(db: Database) -> None:
    db.command("ping")


def require_reachable(client: MongoClient, uri_label: str) -> None:
    try:
        client.admin.command("ping")
    except PyMongoError as exc:
        first = str(exc).split(",")[0].split("\n")[0]
        raise ConfigurationError(f"cannot reach MongoDB at {uri_label}: {first}") from None


def redact(uri: str) -> str:
    """URI without credentials, for messages."""
    if "@" in uri and "://" in uri:
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return uri
