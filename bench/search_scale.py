"""How search cost grows with the database: one database grown with `fhirhub seed` in
stages (default 1k, 5k, 20k patients); at each stage every query below is timed over HTTP
(p50 and p95 of --runs sequential requests after a warm-up; 5 for a query whose warm-up
took over a second), and create and ingest rates are measured.

Usage: .venv/bin/python bench/search_scale.py [--stages 1000,5000,20000] [--runs 20]
       [--var-dir var/bench-scale] [--fresh]

The database stays in the var dir between runs (a stage already reached is not seeded
again); --fresh starts from an empty one. Each stage adds patients with a seed of its own,
so the data grows without duplicates. Prints one table (p50 / p95 per stage, growth of
the p50 from the first stage to the last) and the rates, with the load average at each
stage (the machine's 2 cores may be shared); the numbers also go to results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import httpx
from pymongo import MongoClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import FHIR, ROOT, cli_env, start_server

from fhirhub.embedded.ports import free_port

LOINC = "http://loinc.org"
MRN = "https://fhirhub.example/sid/mrn"
FAMILY = "Garcia"
GIVEN = "Olivia"
CREATES = 200


def seed(var_dir: Path, db_port: int, pg_port: int, patients: int, seed_value: int) -> float:
    """Loads `patients` more patients; returns resources/s as `fhirhub seed` reports it."""
    out = fhirhub(
        var_dir, db_port, pg_port, "seed", "--patients", str(patients), "--seed", str(seed_value)
    )
    print(out.stdout.strip(), flush=True)
    if out.returncode:
        raise SystemExit(f"fhirhub seed failed: {out.stderr.strip().splitlines()[-1]}")
    return float(out.stdout.rsplit("(", 1)[1].split()[0])


def seed_in_chunks(
    var_dir: Path, db_port: int, pg_port: int, target: int, chunk: int, seed_value: int
) -> tuple[int, float, int]:
    """Seeds `chunk` patients per run, each run with a seed of its own, until `target`
    patients are stored. For a `fhirhub seed` that fails on larger runs (its appointment
    bookings collided, a 409): a failed run keeps the bundles it loaded (each bundle is a
    transaction of 10 patients) and the next run goes on. Returns (patients, resources/s,
    the next seed value)."""
    fhirhub(var_dir, db_port, pg_port, "db", "start")
    counts = MongoClient(f"mongodb://127.0.0.1:{db_port}/")["bench"]["type_counts"]

    def stored(resource_type: str | None = None) -> int:
        query = {"t": resource_type} if resource_type else {"t": {"$ne": "~installed"}}
        return sum(int(row.get("n", 0)) for row in counts.find(query))

    try:
        started, before = time.monotonic(), stored()
        while (patients := stored("Patient")) < target:
            run = min(chunk, target - patients)
            out = fhirhub(
                var_dir, db_port, pg_port, "seed", "--patients", str(run), "--seed", str(seed_value)
            )
            seed_value += 1
            last = (out.stdout.strip() or out.stderr.strip()).splitlines()[-1][:100]
            print(f"{patients:,} patients stored; seed run {seed_value}: {last}", flush=True)
        rate = (stored() - before) / (time.monotonic() - started)
        return stored("Patient"), rate, seed_value
    finally:
        fhirhub(var_dir, db_port, pg_port, "db", "stop")


def fhirhub(
    var_dir: Path, db_port: int, pg_port: int, *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fhirhub.cli", *args],
        env=cli_env(var_dir, db_port, pg_port),
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
    )


def queries(client: httpx.Client, base: str) -> list[tuple[str, str]]:
    """The measured requests, with sample values read through the API."""
    first = client.get(f"{base}/Patient?family:exact={FAMILY}&_count=1").json()
    patient = first["entry"][0]["resource"]
    pid = patient["id"]
    mrn = next(i["value"] for i in patient["identifier"] if i.get("system") == MRN)
    since = (date.today().replace(day=1) - timedelta(days=1)).replace(day=1).isoformat()
    year = int(patient["birthDate"][:4])
    return [
        ("Patient?family=X (prefix)", f"Patient?family={FAMILY[:4].lower()}"),
        ("Patient?family:exact=X", f"Patient?family:exact={FAMILY}"),
        ("Patient?name=X", f"Patient?name={GIVEN}"),
        ("Patient?given=X", f"Patient?given={GIVEN}"),
        ("Patient?birthdate=D", f"Patient?birthdate={patient['birthDate']}"),
        (
            "Patient?birthdate=ge..&birthdate=lt.. (a year)",
            f"Patient?birthdate=ge{year}-01-01&birthdate=lt{year + 1}-01-01&_count=10",
        ),
        ("Patient?gender=female&_count=10", "Patient?gender=female&_count=10"),
        ("Patient?_count=1&_total=accurate", "Patient?_count=1&_total=accurate"),
        ("Patient?_count=1", "Patient?_count=1"),
        (
            "Observation?code=8867-4&date=ge..&_count=10",
            f"Observation?code=8867-4&date=ge{since}&_count=10",
        ),
        ("Observation?code=8867-4&_count=10 (token)", "Observation?code=8867-4&_count=10"),
        (
            "Observation?subject.family=X&_count=10",
            f"Observation?subject:Patient.family={FAMILY}&_count=10",
        ),
        (
            "Patient?_has:Observation:patient:code=6301-6",
            "Patient?_has:Observation:patient:code=6301-6",
        ),
        (
            "Observation?patient=P&_include=Observation:subject",
            f"Observation?patient={pid}&code=8867-4&_include=Observation:subject",
        ),
        (
            "Encounter?_count=10&_include=Encounter:patient",
            "Encounter?_count=10&_include=Encounter:patient",
        ),
        ("Observation?_summary=count", "Observation?_summary=count"),
        (
            "Observation?code=8867-4&_total=accurate",
            "Observation?code=8867-4&_total=accurate&_count=10",
        ),
        ("Observation?_sort=-date&_count=10", "Observation?_sort=-date&_count=10"),
        ("Observation/_history?_count=10", "Observation/_history?_count=10"),
        ("Observation?patient=P&code=8867-4", f"Observation?patient={pid}&code={LOINC}|8867-4"),
        ("Patient/P", f"Patient/{pid}"),
        ("Patient?identifier=MRN", f"Patient?identifier={MRN}|{mrn}"),
        ("Patient/P/$everything", f"Patient/{pid}/$everything"),
    ]


def time_query(client: httpx.Client, url: str, runs: int) -> str:
    """'p50 / p95' in ms, or the error status."""
    timings = []
    for attempt in range(runs + 1):
        started = time.perf_counter()
        response = client.get(url)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            code = response.json().get("issue", [{}])[0].get("code", "")
            return f"{response.status_code} {code}".strip()
        if attempt == 0:  # the first run warms caches; a slow query gets fewer runs
            runs = runs if elapsed < 1000 else min(runs, 5)
            continue
        timings.append(elapsed)
        if len(timings) >= runs:
            break
    ordered = sorted(timings)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"{ms(statistics.median(ordered))} / {ms(p95)}"


def ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def create_rate(client: httpx.Client, base: str) -> float:
    body = {"resourceType": "Patient", "name": [{"family": "Benchmark", "given": ["Create"]}]}
    started = time.perf_counter()
    for _ in range(CREATES):
        response = client.post(f"{base}/Patient", json=body, headers=FHIR)
        assert response.status_code == 201, response.text[:200]
    return CREATES / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stages", default="1000,5000,20000")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--var-dir", type=Path, default=ROOT / "var" / "bench-scale")
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--seed-only", action="store_true", help="grow the database, time nothing")
    parser.add_argument(
        "--chunk", type=int, default=0, help="seed this many patients per `fhirhub seed` run"
    )
    args = parser.parse_args()
    stages = [int(s) for s in args.stages.split(",")]
    var_dir: Path = args.var_dir.resolve()
    if args.fresh and var_dir.exists():
        shutil.rmtree(var_dir)
    var_dir.mkdir(parents=True, exist_ok=True)
    state_file = var_dir / "bench-state.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    if "ports" not in state:
        state["ports"] = [free_port(), free_port()]
    db_port, pg_port = state["ports"]
    loaded = state.get("patients", 0)
    results: dict[str, dict[int, str]] = {}
    rates: list[tuple[int, float | None, float]] = []
    loads: dict[int, str] = {}
    for stage in stages:
        ingest = None
        if loaded < stage:
            if args.chunk:
                loaded, ingest, state["seed"] = seed_in_chunks(
                    var_dir, db_port, pg_port, stage, args.chunk, state.get("seed", 100 + loaded)
                )
            else:
                ingest = seed(var_dir, db_port, pg_port, stage - loaded, seed_value=100 + loaded)
                loaded = stage
            state["patients"] = loaded
        state_file.write_text(json.dumps(state))
        if args.seed_only:
            continue
        proc, base, _, auth = start_server(var_dir, db_port, pg_port)
        try:
            client = httpx.Client(timeout=120, headers=auth)
            before = os.getloadavg()[0]
            print(f"-- {stage} patients; load: {before:.2f}", flush=True)
            for name, url in queries(client, base):
                results.setdefault(name, {})[stage] = time_query(client, f"{base}/{url}", args.runs)
                print(f"{name:52} {results[name][stage]:>16} ms", flush=True)
            loads[stage] = f"{before:.1f}-{os.getloadavg()[0]:.1f}"
            rates.append((stage, ingest, create_rate(client, base)))
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=120)
    (var_dir / "results.json").write_text(json.dumps({"results": results, "loads": loads}))
    print_table(stages, results, rates, loads)


def print_table(
    stages: list[int],
    results: dict[str, dict[int, str]],
    rates: list[tuple[int, float | None, float]],
    loads: dict[int, str],
) -> None:
    head = " | ".join(f"{s / 1000:g}k" if s >= 1000 else str(s) for s in stages)
    print(f"\n| query (p50 / p95 ms) | {head} | growth |")
    print("|---" * (len(stages) + 2) + "|")
    for name, by_stage in results.items():
        cells = [by_stage.get(s, "") for s in stages]
        print(f"| `{name}` | {' | '.join(cells)} | {growth(cells)} |")
    print(f"| load average (1 min) | {' | '.join(loads.get(s, '') for s in stages)} | |")
    print("\n| patients | ingest (seed, resources/s) | create (POST Patient, 1 client, /s) |")
    print("|---|---|---|")
    for stage, ingest, create in rates:
        print(f"| {stage:,} | {f'{ingest:,.0f}' if ingest else ''} | {create:,.0f} |")


def growth(cells: list[str]) -> str:
    try:
        first, last = (float(c.split("/")[0].replace(",", "")) for c in (cells[0], cells[-1]))
    except ValueError:
        return ""
    return f"{last / first:.1f}x" if first else ""


if __name__ == "__main__":
    main()
