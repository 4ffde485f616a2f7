"""Notification benchmark: committed write -> care-team notification received.

Usage: .venv/bin/python bench/notifications.py [--rate 50] [--seconds 20] [--backlog 1500]

Starts its own `fhirhub serve` without a worker (embedded database under var/bench-notify,
free ports, no seed) and a loopback HTTP receiver, creates --patients patients each with a
CareTeam of two PractitionerRoles with their own Endpoint (so every Observation is two
notifications), then:
  1. latency: Observations POSTed at --rate per second for --seconds (open loop, paced),
     with 1 and then 2 `fhirhub worker` processes; latency = receipt time - time the
     POST returned (the write is committed then). p50/p95/p99/max per run.
  2. throughput: --backlog Observations written with no worker running, then 2 workers
     started; notifications/s from their start until the last one arrives.
Not a test: numbers only.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "bench"))

from harness import endpoint_role, pct, post  # noqa: E402

from fhirhub.embedded.ports import free_port, wait_for_port  # noqa: E402


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.received: dict[str, float] = {}  # "path resource-version" -> first receipt time
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real receivers do

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                now = time.time()
                key = f"{self.path} {self.headers.get('X-Fhirhub-Resource')}"
                with receiver.lock:
                    receiver.received.setdefault(key, now)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=lambda: self.server.serve_forever(0.05), daemon=True).start()

    def count(self, prefix: str = "") -> int:
        with self.lock:
            return sum(1 for k in self.received if prefix in k)

    def snapshot(self) -> dict[str, float]:
        with self.lock:
            return dict(self.received)


def environment(var_dir: Path, receiver_port: int) -> tuple[dict[str, str], int]:
    port = free_port()
    return dict(
        os.environ,
        FHIRHUB_PORT=str(port),
        FHIRHUB_DB_PORT=str(free_port()),
        FHIRHUB_PG_PORT=str(free_port()),
        FHIRHUB_VAR_DIR=str(var_dir),
        FHIRHUB_SEED="off",
        FHIRHUB_DB_NAME="bench_notify",
        FHIRHUB_WORKER="off",
        FHIRHUB_NOTIFY_ALLOWED_HOSTS="loopback",
        FHIRHUB_AUTH="off",  # loopback only; the benchmark measures notifications
    ), port


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "fhirhub.cli", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # our own session: never leave it running
            proc.wait(timeout=10)


def set_up_patients(client: httpx.Client, base: str, receiver: Receiver, n: int) -> list[str]:
    patients = []
    for p in range(n):
        patient = post(client, base, {"resourceType": "Patient", "name": [{"family": f"B{p}"}]})
        members = []
        for k in range(2):
            role = endpoint_role(client, base, f"http://127.0.0.1:{receiver.port}/ep/{p}-{k}")
            members.append({"member": {"reference": role}})
        team = {
            "resourceType": "CareTeam",
            "status": "active",
            "subject": {"reference": f"Patient/{patient['id']}"},
            "participant": members,
        }
        post(client, base, team)
        patients.append(f"Patient/{patient['id']}")
    return patients


def observation(patient: str, value: int) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": patient},
        "valueQuantity": {"value": value, "unit": "/min"},
    }


def paced(rate: float, seconds: float, threads: int, op: Callable[[int], None]) -> None:
    """Open loop: write i is due at start + i/rate, whoever is free sends it."""
    total = int(rate * seconds)
    counter = iter(range(total))
    lock = threading.Lock()
    begin = time.monotonic()

    def run() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            delay = begin + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            op(i)

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine (Linux), to report how loaded it was."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def busy_since(start: tuple[int, int]) -> str:
    busy, total = cpu_ticks()
    share = (busy - start[0]) / max(1, total - start[1])
    return f"machine CPU {share:.0%} busy ({os.cpu_count()} CPUs, all processes)"


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def latency_run(
    base: str, receiver: Receiver, patients: list[str], rate: float, seconds: float
) -> tuple[list[float], int]:
    acked: dict[str, float] = {}
    local = threading.local()

    def write(i: int) -> None:
        if not hasattr(local, "client"):
            local.client = httpx.Client(timeout=60)
        created = post(local.client, base, observation(patients[i % len(patients)], i))
        acked[f"Observation/{created['id']}/_history/1"] = time.time()

    paced(rate, seconds, 8, write)
    expected = 2 * len(acked)

    def ours() -> dict[str, float]:
        return {k: t for k, t in receiver.snapshot().items() if k.split(" ", 1)[1] in acked}

    wait_until(lambda: len(ours()) >= expected, 60)
    latencies = [t - acked[k.split(" ", 1)[1]] for k, t in ours().items()]
    return latencies, expected - len(latencies)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--backlog", type=int, default=1500)
    parser.add_argument("--patients", type=int, default=20)
    parser.add_argument("--workers", default="1,2", help="worker processes per latency run")
    args = parser.parse_args()
    var_dir = ROOT / "var" / "bench-notify"
    subprocess.run(["rm", "-rf", str(var_dir)], check=True)
    receiver = Receiver()
    env, port = environment(var_dir, receiver.port)
    server = start(["serve"], env)
    workers: list[subprocess.Popen[bytes]] = []
    base = f"http://127.0.0.1:{port}/fhir"
    rows: list[str] = []
    try:
        if not wait_for_port(port, 180):
            raise SystemExit("server did not start")
        client = httpx.Client(timeout=60)
        patients = set_up_patients(client, base, receiver, args.patients)
        for count in [int(n) for n in args.workers.split(",") if n]:
            workers = [start(["worker"], env) for _ in range(count)]
            # Measure running workers, not their start-up: wait for a probe to go through.
            probe = post(client, base, observation(patients[0], -1))
            wait_until(lambda p=probe: receiver.count(f"Observation/{p['id']}/") >= 2, 120)
            ticks = cpu_ticks()
            latencies, missing = latency_run(base, receiver, patients, args.rate, args.seconds)
            rows.append(
                f"latency, {count} worker(s), {args.rate:g} writes/s x {args.seconds:g} s: "
                f"{len(latencies)} notifications, p50 {pct(latencies, 0.5):.0f} ms, "
                f"p95 {pct(latencies, 0.95):.0f} ms, p99 {pct(latencies, 0.99):.0f} ms, "
                f"max {max(latencies) * 1000:.0f} ms, missing {missing}; {busy_since(ticks)}"
            )
            print(rows[-1], flush=True)
            for worker in workers:
                stop(worker)
        if not args.backlog:
            return
        before = receiver.count()
        written = 0

        def backlog_write(i: int) -> None:
            nonlocal written
            with httpx.Client(timeout=60) as c:
                post(c, base, observation(patients[i % len(patients)], i))
            written += 1

        paced(10_000, args.backlog / 10_000, 16, backlog_write)
        expected = before + 2 * args.backlog
        seen = set(receiver.snapshot())
        ticks = cpu_ticks()
        workers = [start(["worker"], env) for _ in range(2)]
        done = wait_until(lambda: receiver.count() >= expected, 600)
        times = sorted(t for k, t in receiver.snapshot().items() if k not in seen)
        span = times[-1] - times[0]
        rows.append(
            f"throughput, 2 workers, backlog of {args.backlog} writes ({written} written): "
            f"{len(times)} notifications in {span:.1f} s from first to last = "
            f"{(len(times) - 1) / span:.0f} notifications/s; {busy_since(ticks)}"
            + ("" if done else " (timed out)")
        )
        print(rows[-1], flush=True)
    finally:
        for worker in workers:
            stop(worker)
        stop(server)
        receiver.server.shutdown()
    print("\n" + "\n".join(rows))


if __name__ == "__main__":
    main()
