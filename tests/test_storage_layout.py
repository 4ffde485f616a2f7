"""Versions and current documents share one collection; older databases are upgraded."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from flask.testing import FlaskClient
from pymongo import MongoClient, monitoring

from fhirhub.embedded.database import GO_RUNTIME_DEFAULTS, EmbeddedDatabase
from fhirhub.embedded.pg_tables import collection_tables
from fhirhub.embedded.postgres import psql
from fhirhub.hub import Hub
from fhirhub.storage.documents import LEGACY_HISTORY, RESOURCES, VERSION_TYPE
from fhirhub.storage.migrations import merge_history
from fhirhub.storage.store import ResourceStore
from tests.helpers import FHIR_JSON, body, patient


class Commands(monitoring.CommandListener):
    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.names.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def test_a_create_is_one_insert_command_of_version_and_current(hub: Hub) -> None:
    listener = Commands()
    client: MongoClient[dict[str, Any]] = MongoClient(
        hub.settings.effective_mongodb_uri, event_listeners=[listener]
    )
    try:
        store = ResourceStore(client[hub.settings.db_name], clock=hub.store.clock)
        # The first write of a process also widens the type's date extents (search_stats);
        # after it, a create is one command.
        store.write("Patient", "warm-up", patient(id="warm-up"), method="POST", fresh_id=True)
        listener.names.clear()
        store.write("Patient", "one-cmd", patient(id="one-cmd"), method="POST", fresh_id=True)
        assert listener.names == ["insert"]
    finally:
        client.close()
    docs = {d["_id"]: d for d in hub.db[RESOURCES].find({"rid": "one-cmd"})}
    assert set(docs) == {"Patient/one-cmd", "Patient/one-cmd/1"}
    assert docs["Patient/one-cmd"]["t"] == "Patient"
    version = docs["Patient/one-cmd/1"]
    assert version[VERSION_TYPE] == "Patient" and "t" not in version and "s_family" not in version


def test_versions_never_match_a_search(client: FlaskClient) -> None:
    client.put("/fhir/Patient/s1", json=patient("Layout", id="s1"), headers=FHIR_JSON)
    client.put("/fhir/Patient/s1", json=patient("Layout", id="s1"), headers=FHIR_JSON)
    found = body(client.get("/fhir/Patient?family=Layout&_total=accurate"))
    assert found["total"] == 1
    assert body(client.get("/fhir/Patient/s1/_history"))["total"] == 2


def test_old_history_collection_is_merged(client: FlaskClient, hub: Hub) -> None:
    client.put("/fhir/Patient/old", json=patient("Before", id="old"), headers=FHIR_JSON)
    # What an older fhirhub left: the version in a separate `history` collection, typed `t`.
    version = hub.db[RESOURCES].find_one_and_delete({"_id": "Patient/old/1"})
    assert version is not None
    version["t"] = version.pop(VERSION_TYPE)
    hub.db[LEGACY_HISTORY].insert_one(version)
    assert client.get("/fhir/Patient/old/_history/1").status_code == 404

    assert merge_history(hub.db) == 1
    assert merge_history(hub.db) == 0  # idempotent
    assert LEGACY_HISTORY not in hub.db.list_collection_names()
    old = body(client.get("/fhir/Patient/old/_history/1"))
    assert old["name"][0]["family"] == "Before"
    assert orjson.loads(version["res"])["id"] == "old"
    assert body(client.get("/fhir/Patient/old/_history"))["total"] == 1


def test_partial_gin_indexes_serve_pushed_down_filters(
    indexed_hub: Hub, embedded_database: EmbeddedDatabase | None
) -> None:
    if embedded_database is None or embedded_database.postgres is None:
        pytest.skip("PostgreSQL-backed FerretDB only")
    port = embedded_database.postgres.port
    schema = indexed_hub.settings.db_name
    metadata = f'"{schema}"._ferretdb_database_metadata'
    table = psql(
        port, f"select _jsonb->>'table' from {metadata} where _jsonb->>'_id' = 'resources'"
    )
    plans = [
        psql(
            port,
            "set enable_seqscan = off; explain select _jsonb from "
            f"\"{schema}\".\"{table.strip()}\" where (_jsonb -> '{field}') @> '{value}'",
        )
        for field, value in (("_id", '"Patient/x"'), ("pub", "0"), ("kt", '"code=b"'))
    ]
    for plan in plans:
        assert "Bitmap Index Scan on fhirhub_pgin_" in plan, plan
    indexes = psql(port, f"select indexdef from pg_indexes where tablename = '{table}'")
    assert "fhirhub_gin_" not in indexes  # the full (non-partial) ones were replaced
    assert "instance_versions" not in indexes  # no unused btree indexes on FerretDB


def test_embedded_ferretdb_runs_with_a_relaxed_go_collector(
    embedded_database: EmbeddedDatabase | None,
) -> None:
    if embedded_database is None:
        pytest.skip("embedded FerretDB only")
    pid = embedded_database._ferretdb_pid()
    assert pid is not None
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    for name, value in GO_RUNTIME_DEFAULTS.items():
        expected = os.environ.get(name, value)
        assert f"{name}={expected}".encode() in environ


def test_large_resources_are_compressed_with_lz4(
    indexed_hub: Hub, embedded_database: EmbeddedDatabase | None, client: FlaskClient
) -> None:
    if embedded_database is None or embedded_database.postgres is None:
        pytest.skip("PostgreSQL-backed FerretDB only")
    port = embedded_database.postgres.port
    schema = indexed_hub.settings.db_name
    tables = collection_tables(port, schema)
    compression = psql(
        port,
        "select attcompression from pg_attribute "
        f"where attrelid = '\"{schema}\".\"{tables[RESOURCES]}\"'::regclass and attname = '_jsonb'",
    )
    assert compression.strip() == "l"
    # A document far over the TOAST threshold goes in compressed and reads back whole.
    text = "lz4 " * 3000
    created = client.post(
        "/fhir/Patient",
        json=patient(name=[{"family": "Long", "text": text}]),
        headers=FHIR_JSON,
    )
    assert created.status_code == 201, created.data
    read = body(client.get(created.headers["Location"].split("/_history")[0]))
    assert read["name"][0]["text"] == text
    stored = psql(
        port,
        f'select pg_column_compression(_jsonb) from "{schema}"."{tables[RESOURCES]}" '
        f"where _jsonb->>'_id' = 'Patient/{read['id']}'",
    )
    assert stored.strip() == "lz4"
