"""Monitoring benchmark: vital-sign Observation 201 -> the care team receives the alert.

Usage: .venv/bin/python bench/monitoring.py [--patients 1000] [--rate 50] [--seconds 20]
                                            [--burst-rate 500] [--burst-seconds 10]
                                            [--workers 1] [--timer-threads 4]
                                            [--team-gets all|alerts]

Starts its own `fhirhub serve` without a worker (embedded database under var/bench-monitor,
free ports, no seed), a loopback HTTP receiver and --workers `fhirhub worker` processes
(each with --timer-threads threads for reactions and timers); creates --patients
patients, each with an RPM CarePlan (heart rate) and a CareTeam whose PractitionerRole has
its own Endpoint (taking every change, or with --team-gets alerts only Flags and Tasks, as
an RPM team's alert inbox would). Then heart-rate readings are POSTed open-loop (paced) at
--rate per second for --seconds, every tenth one out of range (131 /min) for a patient not
yet alerted, and a burst at --burst-rate for --burst-seconds likewise. Latency = receipt of
the alert's Flag at the patient's endpoint - the time the Observation's POST returned
(committed). Also: Flags per rule and per patient (duplicates), worker CPU per reading
(utime+stime of the worker processes over the readings handled), backlog drain time after
the burst (last POST -> last alert received).
Not a test: numbers only.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from harness import endpoint_role, pct, post  # noqa: E402
from notifications import (  # noqa: E402
    Receiver,
    busy_since,
    cpu_ticks,
    environment,
    paced,
    start,
    stop,
    wait_until,
)

from fhirhub.embedded.ports import wait_for_port  # noqa: E402
from fhirhub.monitoring.enrolment.plans import CATEGORY, CATEGORY_SYSTEM  # noqa: E402

LOINC = "http://loinc.org"


def enrol(
    client: httpx.Client, base: str, receiver: Receiver, p: int, types: tuple[str, ...]
) -> str:
    patient = post(client, base, {"resourceType": "Patient", "name": [{"family": f"M{p}"}]})
    ref = f"Patient/{patient['id']}"
    address = f"http://127.0.0.1:{receiver.port}/ep/{patient['id']}"
    role = endpoint_role(client, base, address, types)
    post(
        client,
        base,
        {
            "resourceType": "CareTeam",
            "status": "active",
            "subject": {"reference": ref},
            "participant": [{"member": {"reference": role}}],
        },
    )
    post(
        client,
        base,
        {
            "resourceType": "CarePlan",
            "status": "active",
            "intent": "plan",
            "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": CATEGORY}]}],
            "subject": {"reference": ref},
            "activity": [
                {
                    "detail": {
                        "status": "in-progress",
                        "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
                    }
                }
            ],
        },
    )
    return ref


def reading(patient: str, value: float) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
        "subject": {"reference": patient},
        "effectiveDateTime": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "valueQuantity": {
            "value": value,
            "unit": "/min",
            "system": "http://unitsofmeasure.org",
            "code": "/min",
        },
    }


class Run:
    """Readings at a pace; every tenth is out of range for the next not-yet-alerted patient."""

    def __init__(self, base: str, patients: list[str], fresh: list[str]):
        self.base = base
        self.patients = patients
        self.fresh = fresh  # patients to alert, in order
        self.acked: dict[str, float] = {}  # patient id -> POST returned, for alerting readings
        self.local = threading.local()
        self.lock = threading.Lock()
        self.count = 0

    def write(self, i: int) -> None:
        if not hasattr(self.local, "client"):
            self.local.client = httpx.Client(timeout=60)
        alert = i % 10 == 0
        with self.lock:
            patient = (
                self.fresh.pop(0) if alert and self.fresh else self.patients[i % len(self.patients)]
            )
            alert = alert and patient not in (f"Patient/{k}" for k in self.acked)
        value = 131 if alert else 60 + i % 40
        post(self.local.client, self.base, reading(patient, value))
        with self.lock:
            self.count += 1
            if alert:
                self.acked[patient.split("/")[1]] = time.time()


def flag_times(receiver: Receiver) -> dict[str, float]:
    """patient id -> first receipt of a Flag at that patient's endpoint."""
    out: dict[str, float] = {}
    for key, at in receiver.snapshot().items():
        path, resource = key.split(" ", 1)
        if resource.startswith("Flag/") and resource.endswith("/_history/1"):
            patient = path.rsplit("/", 1)[-1]
            out[patient] = min(at, out.get(patient, at))
    return out


def worker_cpu(pid: int) -> float:
    """Seconds of CPU used by a process and its threads so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    label: str, run: Run, receiver: Receiver, rate: float, seconds: float, worker_pids: list[int]
) -> str:
    print(f"measuring: {label}", flush=True)
    ticks, cpu = cpu_ticks(), sum(worker_cpu(pid) for pid in worker_pids)
    began = time.time()
    paced(rate, seconds, 16, run.write)
    posted = time.time()
    wait_until(lambda: all(p in flag_times(receiver) for p in run.acked), 120)
    received = flag_times(receiver)
    latencies = [received[p] - t for p, t in run.acked.items() if p in received]
    drain = max((received[p] for p in run.acked if p in received), default=posted) - posted
    wait_until(lambda: False, 2)  # let the worker finish the in-range readings' reactions
    used = sum(worker_cpu(pid) for pid in worker_pids) - cpu
    achieved = run.count / max(posted - began, 1e-9)
    return (
        f"| {label} | {run.count} ({achieved:.0f}/s) | {len(latencies)} | "
        f"{pct(latencies, 0.5):.0f} | {pct(latencies, 0.95):.0f} | {pct(latencies, 0.99):.0f} | "
        f"{len(run.acked) - len(latencies)} | {used / max(run.count, 1) * 1000:.1f} | "
        f"{max(drain, 0):.1f} | {busy_since(ticks)}, load average {os.getloadavg()[0]:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--burst-rate", type=float, default=500.0)
    parser.add_argument("--burst-seconds", type=float, default=10.0)
    parser.add_argument(
        "--team-gets",
        choices=("all", "alerts"),
        default="all",
        help="the team's Endpoints take every change (all) or only Flag and Task (alerts)",
    )
    parser.add_argument("--workers", type=int, default=1, help="`fhirhub worker` processes")
    parser.add_argument("--timer-threads", type=int, default=0, help="FHIRHUB_TIMER_THREADS")
    args = parser.parse_args()
    types = ("Flag", "Task") if args.team_gets == "alerts" else ()
    var_dir = ROOT / "var" / "bench-monitor"
    subprocess.run(["rm", "-rf", str(var_dir)], check=True)
    receiver = Receiver()
    env, port = environment(var_dir, receiver.port)
    env["FHIRHUB_DB_NAME"] = "bench_monitor"
    server = start(["serve"], env)
    workers: list[subprocess.Popen[bytes]] = []
    base = f"http://127.0.0.1:{port}/fhir"
    rows = []
    try:
        if not wait_for_port(port, 180):
            raise SystemExit("server did not start")
        client = httpx.Client(timeout=60)
        set_up = time.time()
        with ThreadPoolExecutor(8) as pool:
            patients = list(
                pool.map(
                    lambda p: enrol(httpx.Client(timeout=60), base, receiver, p, types),
                    range(args.patients),
                )
            )
        print(f"{args.patients} patients enrolled in {time.time() - set_up:.0f} s", flush=True)
        if args.timer_threads:
            env["FHIRHUB_TIMER_THREADS"] = str(args.timer_threads)
        workers = [start(["worker"], env) for _ in range(args.workers)]
        probe = patients[-1]
        post(client, base, reading(probe, 131))
        wait_until(lambda: probe.split("/")[1] in flag_times(receiver), 180)
        # The enrolment's own notifications (CareTeams, CarePlans) must be delivered first.
        settled = [receiver.count(), time.monotonic()]

        def quiet() -> bool:
            now = receiver.count()
            if now != settled[0]:
                settled[:] = [now, time.monotonic()]
            return time.monotonic() - settled[1] > 3

        wait_until(quiet, 600)
        half = (len(patients) - 1) // 2
        sustained = Run(base, patients, patients[:half])
        rows.append(
            measure(
                f"sustained {args.rate:g}/s x {args.seconds:g} s",
                sustained,
                receiver,
                args.rate,
                args.seconds,
                [w.pid for w in workers],
            )
        )
        print(rows[-1], flush=True)
        burst = Run(base, patients, patients[half:-1])
        rows.append(
            measure(
                f"burst {args.burst_rate:g}/s x {args.burst_seconds:g} s",
                burst,
                receiver,
                args.burst_rate,
                args.burst_seconds,
                [w.pid for w in workers],
            )
        )
        print(rows[-1], flush=True)
        flags = []
        url = f"{base}/Flag?_count=1000"
        while url:
            page = client.get(url).json()
            flags += [e["resource"] for e in page.get("entry") or []]
            url = next(
                (link["url"] for link in page.get("link") or [] if link["relation"] == "next"), ""
            )
        per_rule = Counter(f["code"]["coding"][0]["code"] for f in flags)
        per_alert = Counter(f["identifier"][0]["value"] for f in flags if f["status"] == "active")
        duplicates = sum(n - 1 for n in per_alert.values() if n > 1)
        print(f"\nFlags per rule: {dict(per_rule)}; duplicate open alerts: {duplicates}")
    finally:
        for worker in workers:
            stop(worker)
        stop(server)
        receiver.server.shutdown()
    header = (
        "| run | readings (achieved) | alerts | p50 ms | p95 ms | p99 ms | missing | "
        "worker CPU ms/reading | drain s | machine |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    print("\n" + header + "\n" + "\n".join(rows))


if __name__ == "__main__":
    main()
