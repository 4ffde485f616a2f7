"""Search benchmark on a large generated dataset: the server through gunicorn next to the
equivalent raw pymongo find on the same database (the floor).

Usage: .venv/bin/python bench/search.py [--patients 1000] [--seconds 5] [--threads 1]

Data is generated once into var/bench-search (deterministic seed) and reused by later runs.
For each query shape it prints throughput, p50 and p95 for both, and p95 server/floor.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from pymongo import MongoClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROOT, cli_env, pct, run_for, start_server

from fhirhub.embedded.ports import free_port
from fhirhub.storage.documents import decode_resource

LOINC_HR = "http://loinc.org|8867-4"
MRN = "https://fhirhub.example/sid/mrn"


def seed(var_dir: Path, db_port: int, pg_port: int, patients: int) -> None:
    marker = var_dir / f"seeded-{patients}"
    if marker.exists():
        return
    env = cli_env(var_dir, db_port, pg_port)
    subprocess.run(
        [sys.executable, "-m", "fhirhub.cli", "seed", "--patients", str(patients)],
        env=env,
        cwd=ROOT,
        check=True,
    )
    marker.write_text("ok")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    var_dir = ROOT / "var" / "bench-search"
    var_dir.mkdir(parents=True, exist_ok=True)
    ports_file = var_dir / "ports.json"
    if ports_file.exists():
        db_port, pg_port = json.loads(ports_file.read_text())
    else:
        db_port, pg_port = free_port(), free_port()
        ports_file.write_text(json.dumps([db_port, pg_port]))
    seed(var_dir, db_port, pg_port, args.patients)
    proc, base, uri, auth = start_server(var_dir, db_port, pg_port)
    db = MongoClient(uri)["bench"]
    client = httpx.Client(timeout=60, headers=auth)
    patients = [d["rid"] for d in db.resources.find({"t": "Patient"}, {"rid": 1})]
    mrns = {}
    for doc in db.resources.find({"t": "Patient"}, {"rid": 1, "res": 1}):
        for ident in (decode_resource(doc["res"]) or {}).get("identifier", []):
            if ident.get("system") == MRN:
                mrns[doc["rid"]] = ident["value"]
    print(f"{db.resources.estimated_document_count()} resources, {len(patients)} patients")

    def pick() -> str:
        return random.choice(patients)

    def get(path: str) -> Any:
        response = client.get(f"{base}/{path}")
        assert response.status_code == 200, response.text[:300]
        return response.json()

    def floor_find(query: dict[str, Any], limit: int = 20) -> list[Any]:
        return list(db.resources.find({**query, "del": False}).limit(limit))

    shapes: list[tuple[str, Callable[[int], Any], Callable[[int], Any]]] = [
        (
            "patient-scoped token",
            lambda i: get(f"Observation?patient=Patient/{pick()}&code={LOINC_HR}"),
            lambda i: floor_find(
                {"t": "Observation", "s_patient": f"Patient/{pick()}", "s_code": LOINC_HR}
            ),
        ),
        (
            "patient-scoped date range",
            lambda i: get(
                f"Observation?patient=Patient/{pick()}&date=ge2023-01-01&date=lt2025-01-01"
            ),
            lambda i: floor_find(
                {
                    "t": "Observation",
                    "s_patient": f"Patient/{pick()}",
                    "s_date__lo": {"$gte": _dt("2023-01-01")},
                    "s_date__hi": {"$lte": _dt("2025-01-01")},
                }
            ),
        ),
        (
            "chained (subject.identifier)",
            lambda i: get(_chained(mrns, pick())),
            lambda i: _floor_chained(db, mrns, pick()),
        ),
        (
            "_include requester",
            lambda i: get(
                f"MedicationRequest?patient=Patient/{pick()}&_include=MedicationRequest:requester"
            ),
            lambda i: _floor_include(db, pick()),
        ),
        (
            "Patient/$everything (_count=100)",
            lambda i: get(f"Patient/{pick()}/$everything?_count=100"),
            lambda i: floor_find({"s_comp": f"Patient/{pick()}"}, 100),
        ),
    ]
    rows = []
    try:
        for name, server_op, floor_op in shapes:
            rate, lat = run_for(args.seconds, args.threads, server_op)
            floor_rate, floor_lat = run_for(args.seconds, args.threads, floor_op)
            rows.append(
                (
                    name,
                    rate,
                    pct(lat, 0.5),
                    pct(lat, 0.95),
                    floor_rate,
                    pct(floor_lat, 0.5),
                    pct(floor_lat, 0.95),
                )
            )
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
    print(f"\nthreads={args.threads}")
    print(
        f"{'query':34} {'req/s':>7} {'p50':>7} {'p95':>7} | {'floor/s':>7} {'p50':>7} "
        f"{'p95':>7} | {'p95 x':>6}"
    )
    for name, rate, p50, p95, frate, fp50, fp95 in rows:
        print(
            f"{name:34} {rate:>7.0f} {p50:>7.1f} {p95:>7.1f} | {frate:>7.0f} {fp50:>7.1f} "
            f"{fp95:>7.1f} | {p95 / fp95:>6.2f}"
        )


def _dt(value: str) -> Any:
    from datetime import UTC, datetime

    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def _chained(mrns: dict[str, str], patient: str) -> str:
    return f"Observation?subject:Patient.identifier={MRN}|{mrns.get(patient, 'x')}&code={LOINC_HR}"


def _floor_chained(db: Any, mrns: dict[str, str], patient: str) -> list[Any]:
    key = f"{MRN}|{mrns.get(patient, 'x')}"
    ids = [d["_id"] for d in db.resources.find({"t": "Patient", "s_identifier": key}, {"_id": 1})]
    if not ids:
        return []
    return list(
        db.resources.find({"t": "Observation", "s_subject": ids[0], "s_code": LOINC_HR}).limit(20)
    )


def _floor_include(db: Any, patient: str) -> list[Any]:
    found = list(
        db.resources.find({"t": "MedicationRequest", "s_patient": f"Patient/{patient}"}).limit(20)
    )
    refs = {r for d in found for r in d.get("s_requester", []) if "/" in r}
    return found + [db.resources.find_one({"_id": r}) for r in refs]


if __name__ == "__main__":
    main()
