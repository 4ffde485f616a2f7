"""Scheduling on seeded data over HTTP: `$find` latency (one practitioner over two weeks, a
specialty over one day), `$book` latency, and 16 clients booking the same time of the same
practitioner at once (exactly one may win: double bookings must be 0).

Usage: .venv/bin/python bench/scheduling.py --patients 1000 [--var-dir var/bench-sched]
       .venv/bin/python bench/scheduling.py --base http://127.0.0.1:PORT/fhir --token T
The first form starts a private server (worker off) and seeds it (`fhirhub seed`), unless
the var dir already holds that many patients; the second measures a running server.
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import FHIR, ROOT, cli_env, start_server

from fhirhub.embedded.ports import free_port

SAMPLES = 20
ROUNDS = 8
CONTENDERS = 16


def timed(client: httpx.Client, method: str, url: str, **kw: Any) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = client.request(method, url, **kw)
    return (time.perf_counter() - started) * 1000, response


def params(resource: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Parameters",
        "parameter": [{"name": "appointment-resource", "resource": resource}],
    }


def entries(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text[:300]
    return [e["resource"] for e in response.json().get("entry", [])]


def clinic_practitioners(client: httpx.Client, base: str) -> list[str]:
    roles = entries(client.get(f"{base}/PractitionerRole?_count=1000"))
    out = []
    for role in roles:
        hours = role.get("availableTime") or [{}]
        if not hours[0].get("allDay"):  # office hours (not the emergency department)
            out.append(role["practitioner"]["reference"])
    return out


def patients(client: httpx.Client, base: str, count: int) -> list[str]:
    found = entries(client.get(f"{base}/Patient?_count={count}"))
    return [f"Patient/{p['id']}" for p in found]


def measure_find(client: httpx.Client, base: str, who: list[str]) -> dict[str, list[float]]:
    start = date.today() + timedelta(days=1)
    window = f"start={start}&end={start + timedelta(days=14)}"
    one_day = f"start={start + timedelta(days=2)}&end={start + timedelta(days=2)}"
    out: dict[str, list[float]] = {"practitioner, 2 weeks": [], "specialty, 1 day": []}
    for practitioner in who:
        ms, response = timed(
            client,
            "GET",
            f"{base}/Appointment/$find?{window}&practitioner={practitioner}&_count=20",
        )
        assert entries(response), f"no free time for {practitioner}"
        out["practitioner, 2 weeks"].append(ms)
    specialty = "http://nucc.org/provider-taxonomy|207Q00000X"  # family medicine
    for _ in range(len(who) // 2):
        ms, response = timed(
            client, "GET", f"{base}/Appointment/$find?{one_day}&specialty={specialty}&_count=20"
        )
        entries(response)
        out["specialty, 1 day"].append(ms)
    return out


def measure_book(
    client: httpx.Client, base: str, who: list[str], people: list[str]
) -> tuple[list[float], int]:
    """Each sample: $find for a patient and a practitioner, then $book the first time."""
    start = date.today() + timedelta(days=20)
    window = f"start={start}&end={start + timedelta(days=14)}"
    timings: list[float] = []
    refused = 0
    for practitioner, patient in zip(who, people, strict=False):
        found = entries(
            client.get(
                f"{base}/Appointment/$find?{window}&practitioner={practitioner}"
                f"&patient={patient}&_count=1"
            )
        )
        ms, response = timed(client, "POST", f"{base}/Appointment/$book", json=params(found[0]))
        if response.status_code == 201:
            timings.append(ms)
        else:
            refused += 1
    return timings, refused


def contend(
    base: str, headers: dict[str, str], practitioner: str, people: list[str]
) -> dict[str, Any]:
    """ROUNDS times, CONTENDERS clients book one time of one practitioner at once."""
    client = httpx.Client(headers={**FHIR, **headers}, timeout=120)
    day = date.today() + timedelta(days=40)
    window = f"start={day}&end={day + timedelta(days=10)}&practitioner={practitioner}"
    found = entries(client.get(f"{base}/Appointment/$find?{window}&_count={ROUNDS * 4}"))
    times: list[dict[str, Any]] = []
    for proposal in found:  # proposals step by 15 minutes: keep times that do not overlap
        if not times or proposal["start"] >= times[-1]["end"]:
            times.append(proposal)
    times = times[:ROUNDS]
    wins = losses = other = 0
    latencies: list[float] = []
    double = 0
    started = time.perf_counter()
    for proposal in times:
        codes = _round(base, headers, proposal, random.sample(people, CONTENDERS), latencies)
        wins += codes.count(201)
        losses += codes.count(409)
        other += len(codes) - codes.count(201) - codes.count(409)
        at = proposal["start"]
        stored = entries(
            client.get(f"{base}/Appointment?actor={practitioner}&date={at}&status=booked")
        )
        double += max(0, len([a for a in stored if a["start"] == at]) - 1)
    elapsed = time.perf_counter() - started
    return {
        "rounds": len(times),
        "wins": wins,
        "losses": losses,
        "other": other,
        "double": double,
        "latencies": latencies,
        "rate": len(latencies) / elapsed,
    }


def _round(
    base: str,
    headers: dict[str, str],
    proposal: dict[str, Any],
    contenders: list[str],
    latencies: list[float],
) -> list[int]:
    """All contenders $book `proposal` (each for their own patient) at the same moment."""
    barrier = threading.Barrier(len(contenders))
    codes: list[int] = []

    def book(patient: str) -> None:
        mine = dict(proposal)
        mine["participant"] = [
            {"actor": {"reference": patient}, "status": "accepted"},
            *proposal["participant"],
        ]
        local = httpx.Client(headers={**FHIR, **headers}, timeout=120)
        barrier.wait()
        ms, response = timed(local, "POST", f"{base}/Appointment/$book", json=params(mine))
        codes.append(response.status_code)
        latencies.append(ms)

    threads = [threading.Thread(target=book, args=(p,)) for p in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return codes


def seeded_server(patients: int, var_dir: Path) -> tuple[Any, str, dict[str, str]]:
    var_dir.mkdir(parents=True, exist_ok=True)
    db_port, pg_port = free_port(), free_port()
    proc, base, _, headers = start_server(var_dir, db_port, pg_port)
    client = httpx.Client(headers=headers, timeout=120)
    have = client.get(f"{base}/Patient?_summary=count").json().get("total", 0)
    if have < patients:
        command = [sys.executable, "-m", "fhirhub.cli", "seed", "--patients", str(patients - have)]
        env = cli_env(var_dir, db_port, pg_port)
        subprocess.run(command, env=env, cwd=ROOT, check=True)
    return proc, base, headers


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base")
    parser.add_argument("--token")
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--var-dir", type=Path, default=ROOT / "var" / "bench-sched")
    parser.add_argument("--contention-only", action="store_true")
    args = parser.parse_args()
    proc = None
    if args.base:
        base = args.base.rstrip("/")
        headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    else:
        proc, base, headers = seeded_server(args.patients, args.var_dir)
    try:
        client = httpx.Client(headers={**FHIR, **headers}, timeout=120)
        total = client.get(f"{base}/Patient?_summary=count").json().get("total")
        booked = client.get(f"{base}/Appointment?status=booked&_summary=count").json()["total"]
        random.seed(7)
        who = clinic_practitioners(client, base)
        people = patients(client, base, 200)
        sample = random.sample(who, min(SAMPLES, len(who)))
        print(f"{total} patients, {len(who)} clinic practitioners, {booked} booked appointments")
        print(f"at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load {_load()}")
        print("| measure | p50 ms | p95 ms | n |\n|---|---|---|---|")
        for name, values in (
            {} if args.contention_only else measure_find(client, base, sample)
        ).items():
            _row(f"$find, {name}", values, str(len(values)))
        timings, refused = (
            ([], 0)
            if args.contention_only
            else measure_book(client, base, sample, random.sample(people, len(sample)))
        )
        if timings:
            _row("$book (after $find)", timings, f"{len(timings)} (+{refused} x 409)")
        result = contend(base, headers, sample[0], people)
        _row(f"$book, {CONTENDERS} clients on one time", result["latencies"], str(result["rounds"]))
        print(
            f"\ncontention: {result['wins']} x 201, {result['losses']} x 409, "
            f"{result['other']} other; double bookings {result['double']}; "
            f"{result['rate']:.1f} requests/s"
        )
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(60)


def p95(values_ms: list[float]) -> float:
    ordered = sorted(values_ms)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def _row(name: str, values: list[float], n: str) -> None:
    print(f"| {name} | {statistics.median(values):.0f} | {p95(values):.0f} | {n} |")


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


if __name__ == "__main__":
    main()
