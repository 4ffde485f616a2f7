"""Against a real gunicorn (the command `fhirhub serve` runs, two worker processes, on a free
port): the errors gunicorn answers itself are OperationOutcomes too, the documented URL
limit holds, and conditional creates stay race-free across processes."""

from __future__ import annotations

import socket
import subprocess
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fhirhub.config import Settings
from fhirhub.embedded.ports import free_port
from fhirhub.fhir.definitions import Definitions
from fhirhub.hub import Hub
from fhirhub.storage.documents import RESOURCES, with_index
from tests.helpers import patient
from tests.websocket_support import start_gunicorn, stop

FHIR_JSON = {"Content-Type": "application/fhir+json"}


@pytest.fixture(scope="module")
def server(
    base_settings: Settings, mongodb_uri: str, definitions: Definitions
) -> Iterator[tuple[Settings, Hub]]:
    port = free_port()
    settings = base_settings.with_overrides(
        mongodb_uri=mongodb_uri,
        db_name=f"t_gu_{uuid.uuid4().hex[:10]}",
        auth=False,
        host="127.0.0.1",
        port=port,
        base_url=f"http://127.0.0.1:{port}/fhir",
        web_workers=2,
    )
    proc, log = start_gunicorn(settings)
    hub = Hub(settings)
    hub.__dict__["definitions"] = definitions
    try:
        yield settings, hub
    finally:
        _stop(proc, log)
        hub.client.drop_database(settings.db_name)
        hub.close()


def _stop(proc: subprocess.Popen[bytes], log: Path) -> None:
    stop(proc)
    log.unlink(missing_ok=True)


def raw(settings: Settings, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (no client library would send them) and read the answer."""
    with socket.create_connection((settings.host, settings.port), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def assert_fhir_error(status: int, headers: Any, body: bytes, expected: int, code: str) -> None:
    assert status == expected, body
    assert headers["Content-Type"].startswith("application/fhir+json")
    outcome = httpx.Response(200, content=body).json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == code and outcome["issue"][0]["diagnostics"]


def test_too_long_url_is_an_operation_outcome(server: tuple[Settings, Hub]) -> None:
    settings, _ = server
    response = httpx.get(f"{settings.fhir_base}/Patient?name={'x' * 9000}", timeout=30)
    assert_fhir_error(response.status_code, response.headers, response.content, 414, "too-long")
    # Up to the documented limit (8190 bytes of request line, not gunicorn's 4094) is served.
    long_ok = httpx.get(f"{settings.fhir_base}/Patient?name={'x' * 8000}", timeout=30)
    assert long_ok.status_code == 200 and long_ok.json()["resourceType"] == "Bundle"


def test_too_many_or_too_large_headers_are_operation_outcomes(
    server: tuple[Settings, Hub],
) -> None:
    settings, _ = server
    url = f"{settings.fhir_base}/metadata"
    big = httpx.get(url, headers={"X-Big": "y" * 9000}, timeout=30)
    assert_fhir_error(big.status_code, big.headers, big.content, 431, "too-long")
    many = httpx.get(url, headers={f"X-H{i}": "1" for i in range(120)}, timeout=30)
    assert_fhir_error(many.status_code, many.headers, many.content, 431, "too-long")


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"NOT A REQUEST LINE AT ALL\r\n\r\n",
        b"GET /fhir/metadata HTTP/1.1\r\nHost: x\r\nBad Header Name: 1\r\n\r\n",
        b"POST /fhir/Patient HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/fhir+json\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    ],
    ids=["request-line", "header", "chunked"],
)
def test_malformed_requests_are_operation_outcomes(
    server: tuple[Settings, Hub], request_bytes: bytes
) -> None:
    settings, _ = server
    status, headers, body = raw(settings, request_bytes)
    assert_fhir_error(status, headers, body, 400, "structure")
    assert httpx.get(f"{settings.fhir_base}/metadata", timeout=30).status_code == 200


def test_duplicate_full_url_over_http_is_400(server: tuple[Settings, Hub]) -> None:
    settings, _ = server
    entry = {
        "fullUrl": "urn:uuid:6f1f0a4e-2b1c-4d2e-9f3a-0000000000cc",
        "resource": patient(),
        "request": {"method": "POST", "url": "Patient"},
    }
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [entry, entry]}
    response = httpx.post(settings.fhir_base, json=bundle, headers=FHIR_JSON, timeout=30)
    assert response.status_code == 400 and "bdl-7" in response.text


def test_parallel_conditional_creates_across_processes(server: tuple[Settings, Hub]) -> None:
    settings, hub = server
    headers = {**FHIR_JSON, "If-None-Exist": "identifier=urn:http-race|1"}
    resource = patient(identifier=[{"system": "urn:http-race", "value": "1"}])
    barrier = threading.Barrier(16)
    codes: list[int] = []

    def create() -> None:
        with httpx.Client(timeout=60) as client:
            barrier.wait()
            url = f"{settings.fhir_base}/Patient"
            codes.append(client.post(url, json=resource, headers=headers).status_code)

    threads = [threading.Thread(target=create) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert Counter(codes) == {201: 1, 200: 15}
    stored = [with_index(d) for d in hub.db[RESOURCES].find({"t": "Patient"})]
    assert sum("urn:http-race|1" in d.get("s_identifier", []) for d in stored) == 1


def test_url_limit_setting_reaches_gunicorn_and_is_checked() -> None:
    from fhirhub.fhir.errors import ConfigurationError
    from fhirhub.launcher import gunicorn_command

    command = gunicorn_command(Settings.from_env({"FHIRHUB_MAX_URL_BYTES": "4000"}))
    assert command[command.index("--limit-request-line") + 1] == "4000"
    default = gunicorn_command(Settings.from_env({}))
    assert default[default.index("--limit-request-line") + 1] == "8190"
    with pytest.raises(ConfigurationError, match="FHIRHUB_MAX_URL_BYTES"):
        Settings.from_env({"FHIRHUB_MAX_URL_BYTES": "9000"})
