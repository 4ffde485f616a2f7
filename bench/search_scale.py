"""How search cost grows with the database: one database grown with `fhirhub seed` in
stages (default 1k, 5k, 20k patients); at each stage every query below is timed over HTTP
(median of 5 after a warm-up), and create and ingest rates are measured.

Usage: .venv/bin/python bench/search_scale.py [--stages 1000,5000,20000] [--runs 5]
       [--var-dir var/bench-scale] [--fresh]

The database stays in the var dir between runs (a stage already reached is not seeded
again); --fresh starts from an empty one. Each stage adds patients with a seed of its own,
so the data grows without duplicates. Prints one table with a growth column (last stage /
first stage) and the rates.
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
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "fhirhub.cli",
            "seed",
            "--patients",
            str(patients),
            "--seed",
            str(seed_value),
        ],
        env=cli_env(var_dir, db_port, pg_port),
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    print(out.strip(), flush=True)
    return float(out.rsplit("(", 1)[1].split()[0])


def queries(client: httpx.Client, base: str) -> list[tuple[str, str]]:
    """The measured requests, with sample values read through the API."""
    first = client.get(f"{base}/Patient?family:exact={FAMILY}&_count=1").json()
    patient = first["entry"][0]["resource"]
    pid = patient["id"]
    mrn = next(i["value"] for i in patient["identifier"] if i.get("system") == MRN)
    since = (date.today().replace(day=1) - timedelta(days=1)).replace(day=1).isoformat()
    return [
        ("Patient?family=X (prefix)", f"Patient?family={FAMILY[:4].lower()}"),
        ("Patient?family:exact=X", f"Patient?family:exact={FAMILY}"),
        ("Patient?name=X", f"Patient?name={GIVEN}"),
        ("Patient?given=X", f"Patient?given={GIVEN}"),
        ("Patient?birthdate=D", f"Patient?birthdate={patient['birthDate']}"),
        ("Patient?_count=1&_total=accurate", "Patient?_count=1&_total=accurate"),
        ("Patient?_count=1", "Patient?_count=1"),
        (
            "Observation?code=8867-4&date=ge..&_count=10",
            f"Observation?code=8867-4&date=ge{since}&_count=10",
        ),
        (
            "Observation?subject.family=X&_count=10",
            f"Observation?subject:Patient.family={FAMILY}&_count=10",
        ),
        (
            "Patient?_has:Observation:patient:code=6301-6",
            "Patient?_has:Observation:patient:code=6301-6",
        ),
        ("Observation?_summary=count", "Observation?_summary=count"),
        ("Observation?_sort=-date&_count=10", "Observation?_sort=-date&_count=10"),
        ("Observation/_history?_count=10", "Observation/_history?_count=10"),
        ("Observation?patient=P&code=8867-4", f"Observation?patient={pid}&code={LOINC}|8867-4"),
        ("Patient/P", f"Patient/{pid}"),
        ("Patient?identifier=MRN", f"Patient?identifier={MRN}|{mrn}"),
        ("Patient/P/$everything", f"Patient/{pid}/$everything"),
    ]


def time_query(client: httpx.Client, url: str, runs: int) -> str:
    timings = []
    for attempt in range(runs + 1):
        started = time.perf_counter()
        response = client.get(url)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            code = response.json().get("issue", [{}])[0].get("code", "")
            return f"{response.status_code} {code}".strip()
        if attempt:  # the first run warms caches
            timings.append(elapsed)
    return (
        f"{statistics.median(timings):,.0f}"
        if min(timings) >= 10
        else (f"{statistics.median(timings):.1f}")
    )


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
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--var-dir", type=Path, default=ROOT / "var" / "bench-scale")
    parser.add_argument("--fresh", action="store_true")
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
    for stage in stages:
        ingest = None
        if loaded < stage:
            ingest = seed(var_dir, db_port, pg_port, stage - loaded, seed_value=100 + loaded)
            loaded = stage
            state["patients"] = loaded
        state_file.write_text(json.dumps(state))
        proc, base, _, auth = start_server(var_dir, db_port, pg_port)
        try:
            client = httpx.Client(timeout=120, headers=auth)
            print(f"-- {stage} patients; load: {os.getloadavg()[0]:.2f}", flush=True)
            for name, url in queries(client, base):
                results.setdefault(name, {})[stage] = time_query(client, f"{base}/{url}", args.runs)
                print(f"{name:48} {results[name][stage]:>10} ms", flush=True)
            rates.append((stage, ingest, create_rate(client, base)))
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=120)
    print_table(stages, results, rates)


def print_table(
    stages: list[int],
    results: dict[str, dict[int, str]],
    rates: list[tuple[int, float | None, float]],
) -> None:
    head = " | ".join(f"{s // 1000}k" if s >= 1000 else str(s) for s in stages)
    print(f"\n| query (median ms) | {head} | growth |")
    print("|---" * (len(stages) + 2) + "|")
    for name, by_stage in results.items():
        cells = [by_stage.get(s, "") for s in stages]
        print(f"| `{name}` | {' | '.join(cells)} | {growth(cells)} |")
    print("\n| patients | ingest (seed, resources/s) | create (POST Patient, 1 client, /s) |")
    print("|---|---|---|")
    for stage, ingest, create in rates:
        print(f"| {stage:,} | {f'{ingest:,.0f}' if ingest else ''} | {create:,.0f} |")


def growth(cells: list[str]) -> str:
    try:
        first, last = (float(c.replace(",", "")) for c in (cells[0], cells[-1]))
    except ValueError:
        return ""
    return f"{last / first:.1f}x" if first else ""


if __name__ == "__main__":
    main()
