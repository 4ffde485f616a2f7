"""Shared parts of the notification tests: a real HTTP receiver on loopback, care-team
set-up through the REST API, and polling helpers. (No tests here.)"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from flask.testing import FlaskClient

from fhirhub.config import Settings
from fhirhub.embedded.ports import free_port
from fhirhub.hub import Hub
from fhirhub.storage.documents import PUB_PENDING, RESOURCES
from tests.helpers import FHIR_JSON, body, create, patient

SECRET = "s3cret-for-tests-0123456789"
SIGNING = "https://fhirhub.example/fhir/StructureDefinition/notification-signing-secret"
TERMINOLOGY = "http://terminology.hl7.org/CodeSystem"


def notification_settings(base: Settings, **overrides: Any) -> Settings:
    """Fast retries and polling, loopback receivers allowed."""
    values: dict[str, Any] = {
        "notify_allowed_hosts": "loopback",
        "notify_retry_base_ms": 50,
        "notify_retry_max_ms": 400,
        "notify_timeout_ms": 1000,
        "worker_lease_ms": 4000,
        "worker_poll_ms": 20,
        "worker_threads": 3,
    }
    values.update(overrides)
    return base.with_overrides(**values)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def signature_ok(self) -> bool:
        expected = hmac.new(SECRET.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(self.headers.get("x-signature", ""), expected)


@dataclass
class Receiver:
    """A stdlib HTTP server in a thread; stop() and start() again on the same port."""

    port: int = field(default_factory=free_port)
    status: int = 200
    delay_s: float = 0.0
    hold: threading.Event | None = None  # when set: block requests until it is set
    # When set: the status to answer each request with (from its headers and body).
    respond: Callable[[dict[str, str], bytes], int] | None = None
    reply_headers: dict[str, str] = field(default_factory=dict)
    arrived: threading.Event = field(default_factory=threading.Event)
    requests: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/notify"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length)
                receiver.arrived.set()
                if receiver.hold is not None:
                    receiver.hold.wait(30)
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                headers = {k.lower(): v for k, v in self.headers.items()}
                respond = receiver.respond
                status = respond(headers, data) if respond is not None else receiver.status
                if status < 300:
                    receiver.requests.append(Received(self.path, headers, data, time.time()))
                self.send_response(status)
                for name, value in receiver.reply_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        server = self.server
        threading.Thread(target=lambda: server.serve_forever(0.02), daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def bundles(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.requests if r.body]

    def focus(self) -> list[str]:
        """'Type/id/_history/v' of each notification received, in arrival order."""
        return [r.headers["x-fhirhub-resource"] for r in self.requests]


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")


def outbox_drained(hub: Hub) -> bool:
    return hub.db[RESOURCES].count_documents({"pub": PUB_PENDING}) == 0


def endpoint(address: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Endpoint",
        "status": "active",
        "connectionType": {
            "system": f"{TERMINOLOGY}/endpoint-connection-type",
            "code": "hl7-fhir-rest",
        },
        "payloadType": [
            {"coding": [{"system": f"{TERMINOLOGY}/endpoint-payload-type", "code": "any"}]}
        ],
        "payloadMimeType": ["application/fhir+json"],
        "address": address,
        "extension": [{"url": SIGNING, "valueString": SECRET}],
        **extra,
    }


def new_id(client: FlaskClient, resource: dict[str, Any]) -> str:
    return str(body(create(client, resource))["id"])


@dataclass
class CareSetup:
    patient: str
    endpoint: str
    role: str
    team: str


def care_team(client: FlaskClient, address: str, **endpoint_extra: Any) -> CareSetup:
    """Patient + Endpoint + PractitionerRole (with the endpoint) + active CareTeam."""
    patient_id = new_id(client, patient())
    endpoint_id = new_id(client, endpoint(address, **endpoint_extra))
    role_id = new_id(
        client,
        {
            "resourceType": "PractitionerRole",
            "active": True,
            "endpoint": [{"reference": f"Endpoint/{endpoint_id}"}],
        },
    )
    team_id = new_id(client, team_resource(patient_id, [f"PractitionerRole/{role_id}"]))
    return CareSetup(f"Patient/{patient_id}", f"Endpoint/{endpoint_id}", role_id, team_id)


def team_resource(patient_id: str, members: list[str]) -> dict[str, Any]:
    team: dict[str, Any] = {
        "resourceType": "CareTeam",
        "status": "active",
        "subject": {"reference": f"Patient/{patient_id}"},
    }
    if members:
        team["participant"] = [{"member": {"reference": m}} for m in members]
    return team


def observation(patient_ref: str, value: float = 72) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": patient_ref},
        "valueQuantity": {
            "value": value,
            "unit": "/min",
            "system": "http://unitsofmeasure.org",
            "code": "/min",
        },
    }


def put(client: FlaskClient, resource: dict[str, Any]) -> dict[str, Any]:
    response = client.put(
        f"/fhir/{resource['resourceType']}/{resource['id']}", json=resource, headers=FHIR_JSON
    )
    assert response.status_code in (200, 201), response.get_data(as_text=True)
    result: dict[str, Any] = body(response)
    return result
