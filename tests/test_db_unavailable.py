"""A database that stops answering: requests fail fast with 503, the server keeps serving."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest
from flask.testing import FlaskClient

from fhirhub.app import create_app
from fhirhub.config import Settings
from fhirhub.fhir.definitions import Definitions
from fhirhub.hub import Hub


class FreezingProxy:
    """Relays TCP to the real database until frozen; then swallows the replies."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.frozen = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, replies: bool) -> None:
        try:
            while data := source.recv(65536):
                if not (replies and self.frozen.is_set()):
                    sink.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def frozen_client(
    settings: Settings, definitions: Definitions, mongodb_uri: str
) -> Iterator[tuple[FlaskClient, FreezingProxy]]:
    real = urlparse(mongodb_uri)
    proxy = FreezingProxy((real.hostname or "127.0.0.1", real.port or 27017))
    proxied = settings.with_overrides(
        mongodb_uri=f"mongodb://127.0.0.1:{proxy.port}/",
        db_socket_timeout_ms=500,
        db_timeout_ms=2000,
    )
    hub = Hub(proxied)
    hub.__dict__["definitions"] = definitions
    try:
        yield create_app(proxied, hub).test_client(), proxy
    finally:
        proxy.frozen.clear()
        hub.client.drop_database(proxied.db_name)
        hub.close()
        proxy.close()


def test_database_that_stops_answering_gives_503(
    frozen_client: tuple[FlaskClient, FreezingProxy],
) -> None:
    client, proxy = frozen_client
    patient = {"resourceType": "Patient", "gender": "female"}
    created = client.post("/fhir/Patient", json=patient)
    assert created.status_code == 201
    location = created.headers["Location"].split("/fhir/")[1].split("/_history")[0]

    proxy.frozen.set()
    started = time.monotonic()
    response = client.get(f"/fhir/{location}")
    waited = time.monotonic() - started
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    body = response.get_json(force=True)
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "transient"
    assert waited < 10, "the socket timeout, not a hang, must end the request"

    proxy.frozen.clear()
    # pymongo drops the timed-out connection; the next request opens a fresh one.
    assert client.get(f"/fhir/{location}").status_code == 200


def test_a_database_known_to_be_down_gives_503_at_once(
    settings: Settings, definitions: Definitions
) -> None:
    # Nothing listens on port 1: after the first request finds that out (waiting in server
    # selection), the probe confirms it and later requests do not wait at all.
    dead = settings.with_overrides(mongodb_uri="mongodb://127.0.0.1:1/", db_timeout_ms=1000)
    hub = Hub(dead)
    hub.__dict__["definitions"] = definitions
    client = create_app(dead, hub).test_client()
    try:
        first = client.get("/fhir/Patient/x")
        assert first.status_code == 503 and first.headers["Retry-After"] == "5"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            started = time.monotonic()
            response = client.get("/fhir/Patient/x")
            if time.monotonic() - started < 0.1:
                break
        assert response.status_code == 503, "the gate did not close"
        assert time.monotonic() - started < 0.1
        assert response.get_json(force=True)["issue"][0]["code"] == "transient"
        assert client.get("/fhir/metadata").status_code == 200  # needs no database
        health = client.get("/healthz")
        assert health.status_code == 503
        assert health.get_json()["parts"]["database"]["state"] == "down"
    finally:
        hub.close()
