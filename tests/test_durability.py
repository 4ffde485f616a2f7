"""A 201 means durable: the embedded PostgreSQL commits synchronously (fsync on, full page
writes on), so a kill -9 of the database during a create load loses no acknowledged write."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from fhirhub.app import create_app
from fhirhub.config import Settings
from fhirhub.embedded.database import EmbeddedDatabase
from fhirhub.embedded.postgres import psql
from fhirhub.fhir.definitions import Definitions
from fhirhub.hub import Hub
from tests.fault_support import CreateLoad, kill_postgres, private_database, restart_database
from tests.helpers import FHIR_JSON, patient

KILLS = 3


@pytest.fixture
def database(base_settings: Settings) -> Iterator[EmbeddedDatabase]:
    with private_database(base_settings.tools_dir) as database:
        yield database


def test_embedded_postgresql_commits_durably(database: EmbeddedDatabase) -> None:
    assert database.postgres is not None
    port = database.postgres.port
    for setting in ("synchronous_commit", "fsync", "full_page_writes"):
        assert psql(port, f"show {setting}").strip() == "on", setting


@pytest.mark.slow
def test_no_acknowledged_create_is_lost_when_postgresql_is_killed(
    database: EmbeddedDatabase, base_settings: Settings, definitions: Definitions
) -> None:
    assert database.postgres is not None
    settings = base_settings.with_overrides(
        mongodb_uri=database.uri,
        db_name="durability",
        auth=False,
        db_timeout_ms=2000,
        db_socket_timeout_ms=5000,
    )
    hub = Hub(settings)
    hub.__dict__["definitions"] = definitions
    app = create_app(settings, hub)
    local = threading.local()

    def post(marker: str) -> tuple[int, str | None]:
        if not hasattr(local, "client"):
            local.client = app.test_client()
        resource = patient(identifier=[{"system": "urn:test", "value": marker}])
        response = local.client.post("/fhir/Patient", json=resource, headers=FHIR_JSON)
        if response.status_code != 201:
            return response.status_code, None
        return 201, response.headers["Location"].split("/Patient/")[1].split("/")[0]

    load = CreateLoad(post, threads=12).start()
    try:
        for _ in range(KILLS):
            assert load.wait_for_more(load.count() + 150, 60), "creates do not go through"
            kill_postgres(database.postgres.data_dir)
            restart_database(database)  # FerretDB too: its connections to PostgreSQL are gone
    finally:
        load.finish()
        acknowledged = list(load.acknowledged)
    try:
        missing = [i for i in acknowledged if hub.store.current("Patient", i) is None]
        assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged creates lost"
        assert load.statuses.get(201, 0) == len(acknowledged) > 450
        assert set(load.statuses) <= {201, 503}, load.statuses  # never a 500
    finally:
        hub.close()
