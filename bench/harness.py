"""Shared helpers for the bench scripts: start a private server, drive load, percentiles."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fhirhub.embedded.ports import free_port, wait_for_port  # noqa: E402

FHIR = {"Content-Type": "application/fhir+json"}
TERMINOLOGY = "http://terminology.hl7.org/CodeSystem"
RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"


def start_server(
    var_dir: Path, db_port: int | None = None, pg_port: int | None = None
) -> tuple[subprocess.Popen[bytes], str, str, dict[str, str]]:
    """Returns the server process, its FHIR base, the database URI and auth headers."""
    port = free_port()
    db_port = db_port or free_port()
    pg_port = pg_port or free_port()
    env = dict(
        os.environ,
        FHIRHUB_PORT=str(port),
        FHIRHUB_DB_PORT=str(db_port),
        FHIRHUB_PG_PORT=str(pg_port),
        FHIRHUB_VAR_DIR=str(var_dir),
        FHIRHUB_SEED="off",
        FHIRHUB_DB_NAME="bench",
        # The notification worker is measured by bench/notifications.py; here it would be
        # busy fanning out the bulk load's events and compete for the same two cores.
        FHIRHUB_WORKER="off",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "fhirhub.cli", "serve"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    if not wait_for_port(port, 180):
        proc.kill()
        raise SystemExit("server did not start")
    base = f"http://127.0.0.1:{port}/fhir"
    for _ in range(100):
        try:
            if httpx.get(f"{base}/metadata").status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    headers = admin_headers(var_dir, db_port, pg_port)
    return proc, base, f"mongodb://127.0.0.1:{db_port}/", headers


def cli_env(var_dir: Path, db_port: int, pg_port: int) -> dict[str, str]:
    """Environment for `fhirhub` commands against a bench's embedded database."""
    return dict(
        os.environ,
        FHIRHUB_VAR_DIR=str(var_dir),
        FHIRHUB_DB_PORT=str(db_port),
        FHIRHUB_PG_PORT=str(pg_port),
        FHIRHUB_DB_NAME="bench",
    )


def admin_headers(var_dir: Path, db_port: int, pg_port: int) -> dict[str, str]:
    """A real SMART access token (auth stays on: the bench measures the production path)."""
    env = cli_env(var_dir, db_port, pg_port)
    token = subprocess.run(
        [
            sys.executable,
            "-m",
            "fhirhub.cli",
            "token",
            "issue",
            "--user",
            "admin",
            "--scope",
            "user/*.cruds",
        ],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {"Authorization": f"Bearer {token}"}


def run_for(seconds: float, threads: int, op: Callable[[int], None]) -> tuple[float, list[float]]:
    latencies: list[list[float]] = [[] for _ in range(threads)]
    stop = time.monotonic() + seconds

    def worker(n: int) -> None:
        i = 0
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            op(n * 1_000_000 + i)
            latencies[n].append(time.perf_counter() - t0)
            i += 1

    started = time.monotonic()
    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.monotonic() - started
    flat = [x for lat in latencies for x in lat]
    return len(flat) / elapsed, flat


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def post(client: httpx.Client, base: str, resource: dict[str, Any]) -> dict[str, Any]:
    """Create a resource; anything but 201 stops the benchmark."""
    response = client.post(f"{base}/{resource['resourceType']}", json=resource, headers=FHIR)
    assert response.status_code == 201, response.text[:300]
    created: dict[str, Any] = response.json()
    return created


def endpoint_role(
    client: httpx.Client, base: str, address: str, types: tuple[str, ...] = ()
) -> str:
    """A PractitionerRole with its own rest-hook Endpoint at `address` (a care-team member
    whose notifications a loopback receiver counts), taking only changes of `types` when
    given (payloadType resource-types codings); returns "PractitionerRole/<id>"."""
    payload = [{"coding": [{"system": RESOURCE_TYPES, "code": t}]} for t in types]
    endpoint = post(
        client,
        base,
        {
            "resourceType": "Endpoint",
            "status": "active",
            "connectionType": {
                "system": f"{TERMINOLOGY}/endpoint-connection-type",
                "code": "hl7-fhir-rest",
            },
            "payloadType": payload or [{"text": "any"}],
            "address": address,
        },
    )
    role = post(
        client,
        base,
        {
            "resourceType": "PractitionerRole",
            "active": True,
            "endpoint": [{"reference": f"Endpoint/{endpoint['id']}"}],
        },
    )
    return f"PractitionerRole/{role['id']}"
