"""`fhirhub serve` supervises its parts: the notification worker, FerretDB, the PostgreSQL
postmaster and the gunicorn master are each killed with SIGKILL under a create load; each
is restarted, the API
answers 503 with Retry-After (never 500) while the database is away, `/healthz` answers
within a second throughout, the log says what happened, service is back within 30 s, and
no acknowledged create is lost."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from fhirhub.config import PROJECT_ROOT
from fhirhub.embedded.ports import free_port, port_in_use
from tests.fault_support import CreateLoad, pid_alive
from tests.helpers import FHIR_JSON, patient

BACK_WITHIN_S = 30.0


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    base: str
    var_dir: Path
    log: Path
    ports: tuple[int, int, int]

    def board(self) -> dict[str, Any]:
        parts: dict[str, Any] = json.loads((self.var_dir / "serve-status.json").read_text())[
            "parts"
        ]
        return parts


@dataclass
class HealthWatch:
    """Polls /healthz in a thread: the slowest answer and every state seen per part."""

    url: str
    slowest: float = 0.0
    failures: list[str] = field(default_factory=list)
    seen: dict[str, set[str]] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    response = client.get(self.url)
                    parts = response.json()["parts"]
                except (httpx.HTTPError, ValueError, KeyError) as error:
                    self.failures.append(f"{type(error).__name__}: {error}")
                    parts = {}
                self.slowest = max(self.slowest, time.monotonic() - started)
                for name, part in parts.items():
                    self.seen.setdefault(name, set()).add(part["state"])
                self.stop.wait(0.1)


@pytest.fixture
def served() -> Iterator[Served]:
    # Not under pytest's tmp_path: see tests/fault_support.private_database.
    var_dir = Path(tempfile.mkdtemp(prefix="fhirhub-serve-"))
    ports = (free_port(), free_port(), free_port())
    env = {
        **os.environ,
        "FHIRHUB_VAR_DIR": str(var_dir),
        "FHIRHUB_PORT": str(ports[0]),
        "FHIRHUB_DB_PORT": str(ports[1]),
        "FHIRHUB_PG_PORT": str(ports[2]),
        "FHIRHUB_SEED": "off",
        "FHIRHUB_AUTH": "off",
        "FHIRHUB_WEB_WORKERS": "1",
        "FHIRHUB_WORKER_THREADS": "2",
    }
    log = var_dir / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fhirhub.cli", "serve"],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{ports[0]}"
    try:
        deadline = time.monotonic() + 180
        while not _healthy(base):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "serve did not start: " + log.read_text()
            time.sleep(0.3)
        yield Served(proc, base, var_dir, log, ports)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(var_dir, ignore_errors=True)


def _healthy(base: str) -> bool:
    try:
        response = httpx.get(f"{base}/healthz", timeout=2)
    except httpx.HTTPError:
        return False
    if response.status_code != 200:
        return False
    return all(part["state"] == "up" for part in response.json()["parts"].values())


@pytest.mark.slow
def test_serve_restarts_each_part_that_is_killed(served: Served) -> None:
    local = threading.local()
    missing_retry_after: list[int] = []

    def post(marker: str) -> tuple[int, str | None]:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=f"{served.base}/fhir", timeout=30)
        resource = patient(identifier=[{"system": "urn:test", "value": marker}])
        response = local.client.post("/Patient", json=resource, headers=FHIR_JSON)
        if response.status_code == 503 and not response.headers.get("Retry-After"):
            missing_retry_after.append(503)
        if response.status_code != 201:
            return response.status_code, None
        return 201, response.json()["id"]

    watch = HealthWatch(f"{served.base}/healthz")
    watcher = threading.Thread(target=watch.run, daemon=True)
    watcher.start()
    load = CreateLoad(post, threads=4).start()
    back_after: dict[str, float] = {}
    try:
        for name in ("worker", "ferretdb", "postgresql", "api"):
            assert load.wait_for_more(load.count() + 30, 60), f"no creates before {name}"
            if name == "api":  # nothing answers /healthz while gunicorn itself restarts
                watch.stop.set()
                watcher.join(10)
            pid = served.board()[name]["pid"]
            os.kill(pid, signal.SIGKILL)
            killed = time.monotonic()
            deadline = killed + BACK_WITHIN_S
            while True:  # restarted (a new pid, up), and creates acknowledged again
                part = served.board()[name]
                if part["state"] == "up" and part["pid"] != pid and _healthy(served.base):
                    before = load.count()
                    if load.wait_for_more(before, deadline - time.monotonic()):
                        break
                assert time.monotonic() < deadline, f"{name} not back: {part}"
                time.sleep(0.1)
            back_after[name] = time.monotonic() - killed
    finally:
        load.finish()
        watch.stop.set()
        watcher.join(10)
    log = served.log.read_text()
    for name in back_after:
        assert f"{name} (pid" in log and f"{name} restarted" in log, log
    assert set(load.statuses) <= {201, 503}, (load.statuses, log[-3000:])
    assert not missing_retry_after
    assert watch.slowest < 1.0, watch.slowest
    assert not watch.failures, watch.failures[:3]
    assert "restarting" in watch.seen["worker"]
    with httpx.Client(base_url=f"{served.base}/fhir", timeout=30) as client:
        lost = [i for i in load.acknowledged if client.get(f"/Patient/{i}").status_code != 200]
    assert not lost, f"{len(lost)} of {len(load.acknowledged)} acknowledged creates lost"
    print(f"back after (s): {back_after}; statuses {load.statuses}")
    print("\n".join(line for line in log.splitlines() if "fhirhub serve:" in line))

    # SIGTERM stops every part, the restarted ones included.
    board = served.board()
    served.proc.send_signal(signal.SIGTERM)
    served.proc.wait(timeout=90)
    pids = {name: board[name]["pid"] for name in ("api", "worker", "ferretdb", "postgresql")}
    deadline = time.monotonic() + 10  # a postmaster removes its pid file just before exiting
    while time.monotonic() < deadline and any(pid_alive(pid) for pid in pids.values()):
        time.sleep(0.1)
    assert not [name for name, pid in pids.items() if pid_alive(pid)], log[-3000:]
    assert not any(port_in_use(p) for p in served.ports)
    assert not (served.var_dir / "serve-status.json").exists()
