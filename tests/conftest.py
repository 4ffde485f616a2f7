"""One real MongoDB-wire database per test session: FerretDB (embedded, free ports, temp dir)
unless FHIRHUB_TEST_MONGODB_URI points at a real MongoDB."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from fhirhub.app import create_app
from fhirhub.config import PROJECT_ROOT, Settings
from fhirhub.embedded.database import EmbeddedDatabase
from fhirhub.embedded.fhir_package import ensure_fhir_package
from fhirhub.embedded.ports import free_port
from fhirhub.fhir.definitions import Definitions
from fhirhub.hub import Hub
from fhirhub.worker.runner import NotificationWorker
from tests.smtp_support import MailServer
from tests.test_notifications_support import Receiver


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    return Settings(
        cache_dir=PROJECT_ROOT / ".cache",
        tools_dir=PROJECT_ROOT / ".tools",
        base_url="http://testserver/fhir",
        seed_on_empty=False,
    )


@pytest.fixture(scope="session")
def definitions(base_settings: Settings) -> Definitions:
    return Definitions(ensure_fhir_package(base_settings.cache_dir))


@pytest.fixture(scope="session")
def embedded_database(base_settings: Settings) -> Iterator[EmbeddedDatabase | None]:
    if os.environ.get("FHIRHUB_TEST_MONGODB_URI"):
        yield None
        return
    root = Path(tempfile.mkdtemp(prefix="fhirhub-test-"))
    database = EmbeddedDatabase(
        root=root / "db",
        tools_dir=base_settings.tools_dir,
        port=free_port(),
        backend=os.environ.get("FHIRHUB_TEST_DB_BACKEND", "postgresql"),
        pg_port=free_port(),
    )
    database.start()
    try:
        yield database
    finally:
        database.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def mongodb_uri(embedded_database: EmbeddedDatabase | None) -> str:
    return embedded_database.uri if embedded_database else os.environ["FHIRHUB_TEST_MONGODB_URI"]


@pytest.fixture
def settings(base_settings: Settings, mongodb_uri: str) -> Settings:
    # A fresh database per test keeps tests independent without restarting the server.
    # Existing API tests call without tokens; SMART tests build apps with auth on.
    return base_settings.with_overrides(
        mongodb_uri=mongodb_uri, db_name=f"t_{uuid.uuid4().hex[:12]}", auth=False
    )


@pytest.fixture
def hub(settings: Settings, definitions: Definitions) -> Iterator[Hub]:
    hub = Hub(settings)
    hub.__dict__["definitions"] = definitions  # share the session's parsed definitions
    try:
        yield hub
    finally:
        hub.client.drop_database(settings.db_name)
        hub.close()


@pytest.fixture
def indexed_hub(hub: Hub, embedded_database: EmbeddedDatabase | None) -> Hub:
    """A hub whose database has the production indexes (for data-heavy tests)."""
    hub.store.ensure_indexes()
    if embedded_database is not None and embedded_database.postgres is not None:
        from fhirhub.bootstrap import PUSHDOWN_FIELDS
        from fhirhub.embedded.pg_counters import COUNTS, ensure_counters
        from fhirhub.embedded.pg_indexes import ensure_gin_indexes
        from fhirhub.embedded.pg_tables import use_lz4

        port = embedded_database.postgres.port
        ensure_gin_indexes(port, hub.settings.db_name, PUSHDOWN_FIELDS)
        use_lz4(port, hub.settings.db_name)
        ensure_counters(port, hub.settings.db_name, lambda: hub.db.create_collection(COUNTS))
    return hub


@pytest.fixture
def app(settings: Settings, hub: Hub) -> Flask:
    return create_app(settings, hub)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


# -- notifications: a loopback HTTP receiver and an in-process worker on the test's hub ------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver().start()
    yield receiver
    if receiver.hold is not None:
        receiver.hold.set()  # let requests a test held back finish
    receiver.stop()


@pytest.fixture
def worker(hub: Hub) -> Iterator[NotificationWorker]:
    worker = NotificationWorker(hub)
    worker.start()
    yield worker
    worker.shutdown()


# -- SMART on FHIR: apps with authorization on (tests/test_auth*.py, tests/test_smart*.py) ----


@pytest.fixture
def auth_hub(settings: Settings, definitions: Definitions) -> Iterator[Hub]:
    hub = Hub(settings.with_overrides(auth=True))
    hub.__dict__["definitions"] = definitions
    try:
        yield hub
    finally:
        _close_auth_hub(hub)


@pytest.fixture
def auth_client(auth_hub: Hub) -> FlaskClient:
    return create_app(auth_hub.settings, auth_hub).test_client()


@pytest.fixture
def live_server(settings: Settings, definitions: Definitions) -> Iterator[Hub]:
    """The app with auth on, served over real HTTP on loopback (for real client libraries
    and the browser); the hub's base URL is the server's own."""
    import threading

    from werkzeug.serving import make_server

    port = free_port()
    live = settings.with_overrides(
        auth=True, host="127.0.0.1", port=port, base_url=f"http://127.0.0.1:{port}/fhir"
    )
    hub = Hub(live)
    hub.__dict__["definitions"] = definitions
    server = make_server("127.0.0.1", port, create_app(live, hub), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        thread.join(timeout=5)
        _close_auth_hub(hub)


def _close_auth_hub(hub: Hub) -> None:
    if "audit" in hub.__dict__:
        hub.audit.flush()  # the writer thread must not recreate the dropped database
    hub.client.drop_database(hub.settings.db_name)
    hub.close()


@pytest.fixture
def mail() -> Iterator[MailServer]:
    """A real SMTP server on loopback (aiosmtpd) for the email tests."""
    server = MailServer().start()
    yield server
    server.stop()


@pytest.fixture
def sms() -> Iterator[Receiver]:
    """A real HTTP receiver standing in for the SMS gateway."""
    gateway = Receiver().start()
    yield gateway
    gateway.stop()
