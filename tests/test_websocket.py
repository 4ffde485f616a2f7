"""R4 Subscription websocket channel: bind / bound / ping through a real gunicorn (gthread,
two workers) and the Flask development server, with a real worker handing deliveries over
through the database, and a websocket client library independent of the server's."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient
from websockets.exceptions import ConnectionClosed, InvalidStatus
from werkzeug.serving import make_server

from fhirhub.api.websocket import channel as websocket_api
from fhirhub.app import create_app
from fhirhub.config import Settings
from fhirhub.embedded.ports import free_port
from fhirhub.fhir.capability import WEBSOCKET_EXTENSION
from fhirhub.fhir.definitions import Definitions
from fhirhub.hub import Hub
from fhirhub.storage.auth_store import secret_hash
from fhirhub.storage.websockets import NOT_CONFIRMED, SocketStore
from fhirhub.worker.runner import NotificationWorker
from tests.auth_helpers import PASSWORD, register_app
from tests.helpers import body, create
from tests.test_notifications_support import notification_settings, wait_for
from tests.websocket_support import (
    Live,
    heart_rate,
    no_message,
    open_socket,
    server_settings,
    start_gunicorn,
    status_parts,
    stop,
    websocket_subscription,
)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return notification_settings(settings, websocket_max=1)


@pytest.fixture(scope="module")
def live(base_settings: Settings, mongodb_uri: str, definitions: Definitions) -> Iterator[Live]:
    settings = server_settings(base_settings, mongodb_uri)
    hub = Hub(settings)
    hub.__dict__["definitions"] = definitions
    register_app(hub)
    hub.auth.add_user("root", PASSWORD, admin=True)
    token = hub.auth.issue_direct("app", "user/*.cruds", user="root")["access_token"]
    proc, log = start_gunicorn(settings)
    worker = NotificationWorker(hub)
    worker.start()
    try:
        yield Live(settings, hub, worker, token)
    finally:
        worker.shutdown()
        stop(proc)
        log.unlink(missing_ok=True)
        hub.audit.flush()
        hub.client.drop_database(settings.db_name)
        hub.close()


def test_capability_statement_and_subscription_write(client: FlaskClient) -> None:
    rest = body(client.get("/fhir/metadata"))["rest"][0]
    assert rest["extension"] == [
        {"url": WEBSOCKET_EXTENSION, "valueUri": "ws://testserver/fhir/websocket"}
    ]
    created = body(create(client, websocket_subscription("x")))
    assert created["status"] == "active" and "endpoint" not in created["channel"]
    assert "extension" not in created  # nothing is signed: no secret
    plain = client.get("/fhir/websocket")  # not an upgrade
    assert plain.status_code == 400 and "websocket client" in plain.get_data(as_text=True)


def test_bind_ping_and_status(live: Live) -> None:
    code = uuid.uuid4().hex
    sub = live.post(websocket_subscription(code))
    assert sub["status"] == "active"
    hook = live.post(
        {
            **websocket_subscription("never"),
            "channel": {"type": "rest-hook", "endpoint": "http://127.0.0.1:9/hook"},
        }
    )
    with live.socket() as ws:
        ws.send(f"bind {sub['id']}")
        assert ws.recv(timeout=10) == f"bound {sub['id']}"
        ws.send("bind no-such-subscription")
        assert str(ws.recv(timeout=10)).startswith("error bind no-such-subscription: ")
        ws.send(f"bind Subscription/{hook['id']}")
        assert "not websocket" in str(ws.recv(timeout=10))
        ws.send("subscribe everything")
        assert str(ws.recv(timeout=10)).startswith("error unknown command 'subscribe'")
        live.post(heart_rate("another-code"))
        obs = live.post(heart_rate(code))
        assert ws.recv(timeout=15) == f"ping {sub['id']}"
        # one ping: the write that did not match sent nothing
        assert no_message(ws, 1.0)
    parts = wait_for(
        lambda: (p := status_parts(live, sub["id"]))["delivered"]["valueInteger"] == 1 and p
    )
    (delivery,) = parts["deliveries"]
    assert delivery["state"] == "delivered"
    assert delivery["focus"] == {"reference": f"Observation/{obs['id']}/_history/1"}


def test_websocket_needs_a_valid_token(live: Live) -> None:
    for token in (None, "not-a-token"):
        with pytest.raises(InvalidStatus) as refused:
            open_socket(live.settings.websocket_url, token)
        assert refused.value.response.status_code == 401


def test_bind_needs_a_token_that_may_read_the_subscription(live: Live) -> None:
    sub = live.post(websocket_subscription(uuid.uuid4().hex))
    patient = live.post({"resourceType": "Patient", "name": [{"family": "Socket"}]})
    limited = live.hub.auth.issue_direct("app", "patient/Observation.rs", patient=patient["id"])
    with live.socket(limited["access_token"]) as ws:
        ws.send(f"bind {sub['id']}")
        reply = str(ws.recv(timeout=10))
    assert reply.startswith(f"error bind {sub['id']}: "), reply


def test_every_socket_bound_to_a_subscription_is_pinged(live: Live) -> None:
    codes = [uuid.uuid4().hex for _ in range(2)]
    a, b = (live.post(websocket_subscription(c))["id"] for c in codes)
    with live.socket() as one, live.socket() as two, live.socket() as three:
        for ws, ids in ((one, [a]), (two, [a, b]), (three, [b])):
            for sub_id in ids:
                ws.send(f"bind {sub_id}")
                assert ws.recv(timeout=10) == f"bound {sub_id}"
        live.post(heart_rate(codes[0]))
        assert one.recv(timeout=15) == f"ping {a}"
        assert two.recv(timeout=15) == f"ping {a}"
        live.post(heart_rate(codes[1]))
        assert two.recv(timeout=15) == f"ping {b}"
        assert three.recv(timeout=15) == f"ping {b}"
        assert no_message(one, 0.5) and no_message(three, 0.1)


def test_deliveries_without_a_bound_socket_are_skipped(live: Live) -> None:
    code = uuid.uuid4().hex
    sub = live.post(websocket_subscription(code))
    with live.socket() as ws:
        ws.send(f"bind {sub['id']}")
        assert ws.recv(timeout=10) == f"bound {sub['id']}"
    live.post(heart_rate(code))  # the socket is closed: nobody to ping, nothing kept
    parts = wait_for(
        lambda: (p := status_parts(live, sub["id"]))["skipped"]["valueInteger"] == 1 and p
    )
    assert parts["pending"]["valueInteger"] == 0 and parts["ready"]["valueInteger"] == 0
    # normally "no websocket is bound", or "closed before the ping" if the write beat the
    # server to noticing the close
    assert "websocket" in parts["deliveries"][0]["last-error"]


def test_open_sockets_close_when_the_server_stops(
    base_settings: Settings, mongodb_uri: str
) -> None:
    settings = server_settings(base_settings, mongodb_uri, auth=False, web_workers=1)
    proc, log = start_gunicorn(settings)
    try:
        sub = httpx.post(
            f"{settings.fhir_base}/Subscription", json=websocket_subscription("stop")
        ).json()
        with open_socket(settings.websocket_url, None) as ws:
            ws.send(f"bind {sub['id']}")
            assert ws.recv(timeout=10) == f"bound {sub['id']}"
            started = time.monotonic()
            proc.terminate()
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        assert proc.wait(15) == 0, log.read_text()[-2000:]
        assert time.monotonic() - started < 5  # not gunicorn's 30 s graceful timeout
    finally:
        if proc.poll() is None:
            proc.kill()
        log.unlink(missing_ok=True)
        cleanup = Hub(settings)
        cleanup.client.drop_database(settings.db_name)
        cleanup.close()


@contextmanager
def dev_server(app: Flask) -> Iterator[str]:
    """The app on werkzeug's development server (the `flask run` path); yields its ws URL."""
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"ws://127.0.0.1:{port}/fhir/websocket"
    finally:
        server.shutdown()
        thread.join(5)


def test_flask_development_server(
    settings: Settings, hub: Hub, client: FlaskClient, worker: NotificationWorker
) -> None:
    sub = body(create(client, websocket_subscription("dev")))
    with dev_server(create_app(settings, hub)) as url, open_socket(url, None) as ws:
        ws.send(f"bind {sub['id']}")
        assert ws.recv(timeout=10) == f"bound {sub['id']}"
        with pytest.raises(InvalidStatus) as full:  # FHIRHUB_WEBSOCKET_MAX=1
            open_socket(url, None)
        assert full.value.response.status_code == 503
        create(client, heart_rate("dev"))
        assert ws.recv(timeout=15) == f"ping {sub['id']}"


def test_revoked_token_closes_the_socket(auth_hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(websocket_api, "REAUTH_S", 0.3)
    register_app(auth_hub)
    auth_hub.auth.add_user("root", PASSWORD, admin=True)
    token = auth_hub.auth.issue_direct("app", "user/*.cruds", user="root")["access_token"]
    sub = auth_hub.resources.create("Subscription", websocket_subscription("revoked"))
    with (
        dev_server(create_app(auth_hub.settings, auth_hub)) as url,
        open_socket(url, token) as ws,
    ):
        ws.send(f"bind {sub.stored.resource_id}")
        assert ws.recv(timeout=10) == f"bound {sub.stored.resource_id}"
        auth_hub.auth.store.revoke_token(secret_hash(token))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


def test_sweep_finishes_hand_overs_of_web_processes_that_died(hub: Hub) -> None:
    now = [datetime(2024, 5, 1, 12, 0, tzinfo=UTC)]
    store = SocketStore(hub.db, clock=lambda: now[0])
    delivery: dict[str, Any] = {"_id": "Subscription/s|Observation/o/1", "sub": "Subscription/s"}
    delivery.update(ev="Observation/o/1", ts=now[0], st="pending")
    hub.db["deliveries"].insert_one(dict(delivery))

    def stored() -> dict[str, Any]:
        found: dict[str, Any] = hub.db["deliveries"].find_one() or {}
        return found

    store.bind("web:gone", "Subscription/s")
    assert store.live_owners("Subscription/s") == ["web:gone"]
    store.hand_over(delivery, ["web:gone"], by="worker")
    assert stored()["st"] == "ready"
    assert [i["del"] for i in store.inbox("web:gone")] == [delivery["_id"]]
    now[0] += timedelta(minutes=2)  # no heartbeat, the item never taken: the process died
    assert store.live_owners("Subscription/s") == []
    assert store.sweep() == 1
    done = stored()
    assert done["st"] == "skipped" and done["err"] == NOT_CONFIRMED
    assert store.inbox("web:gone") == [] and hub.db["websocket_bindings"].count_documents({}) == 0
