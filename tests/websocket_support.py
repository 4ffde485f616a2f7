"""Shared parts of the websocket tests: a real gunicorn (the command `fhirhub serve` runs,
gthread workers) on loopback against the test database, tokens, and a websocket client."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

from fhirhub.config import PROJECT_ROOT, Settings
from fhirhub.embedded.ports import free_port, wait_for_port
from fhirhub.hub import Hub
from fhirhub.launcher import gunicorn_command
from fhirhub.worker.runner import NotificationWorker
from tests.test_notifications_support import notification_settings

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def server_settings(base: Settings, mongodb_uri: str, **overrides: Any) -> Settings:
    port = free_port()
    values: dict[str, Any] = {
        "mongodb_uri": mongodb_uri,
        "db_name": f"t_ws_{uuid.uuid4().hex[:10]}",
        "auth": True,
        "host": "127.0.0.1",
        "port": port,
        "base_url": f"http://127.0.0.1:{port}/fhir",
        "web_workers": 2,  # sockets land in either process: the hand-over must reach both
        "websocket_max": 4,
    }
    values.update(overrides)
    return notification_settings(base, **values)


def start_gunicorn(settings: Settings) -> tuple[subprocess.Popen[bytes], Path]:
    env = {
        **os.environ,
        "MONGODB_URI": settings.effective_mongodb_uri,
        "FHIRHUB_DB_NAME": settings.db_name,
        "FHIRHUB_BASE_URL": settings.base_url,
        "FHIRHUB_HOST": settings.host,
        "FHIRHUB_PORT": str(settings.port),
        "FHIRHUB_CACHE_DIR": str(settings.cache_dir),
        "FHIRHUB_TOOLS_DIR": str(settings.tools_dir),
        "FHIRHUB_AUTH": "on" if settings.auth else "off",
        "FHIRHUB_WEBSOCKET_MAX": str(settings.websocket_max),
        "FHIRHUB_WEB_WORKERS": str(settings.web_workers),
        "FHIRHUB_NOTIFY_ALLOWED_HOSTS": settings.notify_allowed_hosts,
    }
    log = Path(tempfile.mkstemp(prefix="fhirhub-gunicorn-", suffix=".log")[1])
    with log.open("wb") as out:
        proc = subprocess.Popen(
            gunicorn_command(settings), env=env, cwd=PROJECT_ROOT, stdout=out, stderr=out
        )
    if not wait_for_port(settings.port, 60):
        proc.kill()
        raise AssertionError(f"gunicorn did not start: {log.read_text()[-2000:]}")
    for _ in range(300):  # the first request loads the FHIR definitions in each worker
        if httpx.get(f"{settings.fhir_base}/metadata", timeout=30).status_code == 200:
            break
        time.sleep(0.1)
    return proc, log


def stop(proc: subprocess.Popen[bytes], timeout: float = 20) -> int:
    proc.terminate()
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


@dataclass
class Live:
    """A running server, the worker delivering for it, and an admin token."""

    settings: Settings
    hub: Hub
    worker: NotificationWorker
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def post(self, resource: dict[str, Any], token: str | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token or self.token}", **FHIR_JSON}
        url = f"{self.settings.fhir_base}/{resource['resourceType']}"
        response = httpx.post(url, json=resource, headers=headers, timeout=30)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def get(self, path: str) -> dict[str, Any]:
        response = httpx.get(f"{self.settings.fhir_base}/{path}", headers=self.headers)
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found

    def socket(self, token: str | None = None) -> ClientConnection:
        return open_socket(self.settings.websocket_url, token or self.token)


def open_socket(url: str, token: str | None) -> ClientConnection:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return connect(url, additional_headers=headers, proxy=None, open_timeout=20)


def heart_rate(code: str, patient_ref: str = "Patient/p1") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://example.org/ws-test", "code": code}]},
        "subject": {"reference": patient_ref},
    }


def websocket_subscription(code: str) -> dict[str, Any]:
    return {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "websocket test",
        "criteria": f"Observation?code=http://example.org/ws-test|{code}",
        "channel": {"type": "websocket"},
    }


def status_parts(live: Live, subscription_id: str) -> dict[str, Any]:
    status = live.get(f"Subscription/{subscription_id}/$status")
    parts: dict[str, Any] = {p["name"]: p for p in status["parameter"] if p["name"] != "delivery"}
    parts["deliveries"] = [
        {q["name"]: next(v for k, v in q.items() if k.startswith("value")) for q in p["part"]}
        for p in status["parameter"]
        if p["name"] == "delivery"
    ]
    return parts


def no_message(socket: ClientConnection, seconds: float) -> bool:
    try:
        message = socket.recv(timeout=seconds)
    except TimeoutError:
        return True
    raise AssertionError(f"unexpected message {message!r}")
