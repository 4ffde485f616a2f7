"""REST core benchmark: the server through gunicorn versus raw pymongo on the same database.

Usage: .venv/bin/python bench/rest_core.py [--seconds 5] [--bundles 30]

Starts its own `fhirhub serve` (embedded database under var/bench, free ports, no seed),
ingests the Synthea transaction bundles from ../shared/fhir-corpus, then measures read,
vread, create and update at concurrency 1 and 16, and prints each next to the equivalent
pymongo operation (the floor) with the ratio server/floor. Not a test: numbers only.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from pymongo import MongoClient

ROOT = Path(__file__).resolve().parent.parent
CORPUS = (
    ROOT.parent / "shared" / "fhir-corpus" / "synthea-r4" / "smart-on-fhir-generated-sample-data"
)
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import FHIR, pct, run_for, start_server  # noqa: E402

from fhirhub.storage.documents import decode_resource  # noqa: E402


def post_bundle(client: httpx.Client, base: str, bundle: dict[str, Any]) -> None:
    response = client.post(base, json=bundle, headers=FHIR)
    assert response.status_code == 200, response.text[:300]


def floor_insert(floor_db: Any, bundle: dict[str, Any]) -> None:
    docs = [{"res": e["resource"]} for e in bundle["entry"]]
    floor_db.x.insert_many(docs)
    floor_db.y.insert_many([dict(d) for d in docs])


def timed_in_threads(threads: int, items: list[Any], op: Callable[[Any], None]) -> float:
    """Seconds for `threads` threads to take turns through `items`."""
    pending = list(items)
    lock = threading.Lock()

    def run() -> None:
        while True:
            with lock:
                if not pending:
                    return
                item = pending.pop()
            op(item)

    started = time.monotonic()
    pool = [threading.Thread(target=run) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--bundles", type=int, default=30)
    args = parser.parse_args()
    var_dir = ROOT / "var" / "bench"
    subprocess.run(["rm", "-rf", str(var_dir)], check=True)
    proc, base, uri, auth = start_server(var_dir)
    local = threading.local()

    def client() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(timeout=60, headers=auth)
        return local.client

    rows: list[tuple[str, int, float, float, float, float, float]] = []
    try:
        db = MongoClient(uri)["bench"]
        bundles = [json.loads(p.read_text()) for p in sorted(CORPUS.glob("*.json"))][: args.bundles]
        resources = sum(len(b["entry"]) for b in bundles)
        floor_db = db.client["bench_floor"]
        # The first half of the bundles is posted by one client, the second by two at once
        # (an importer with two connections); the floor inserts the same resources as
        # documents, twice (current + history, as the server keeps both).
        halves = (bundles[: len(bundles) // 2], bundles[len(bundles) // 2 :])
        for threads, part in zip((1, 2), halves, strict=True):
            count = sum(len(b["entry"]) for b in part)
            rate = count / timed_in_threads(threads, part, lambda b: post_bundle(client(), base, b))
            floor = count / timed_in_threads(threads, part, lambda b: floor_insert(floor_db, b))
            rows.append(("transaction ingest (resources/s)", threads, rate, 0, 0, floor, 0))

        cursor = db.resources.find({"t": "Observation"}, {"rid": 1}).limit(500)
        observation_ids = [d["rid"] for d in cursor]
        sample = db.resources.find_one({"t": "Observation"})
        assert sample is not None
        body = dict(decode_resource(sample["res"]) or {})
        body.pop("meta", None)
        body.pop("id", None)

        def read(i: int) -> None:
            r = client().get(f"{base}/Observation/{random.choice(observation_ids)}")
            assert r.status_code == 200

        def vread(i: int) -> None:
            r = client().get(f"{base}/Observation/{random.choice(observation_ids)}/_history/1")
            assert r.status_code == 200

        def create(i: int) -> None:
            r = client().post(f"{base}/Observation", json=body, headers=FHIR)
            assert r.status_code == 201, r.text[:200]

        def update(i: int) -> None:
            rid = f"u{i % 50_000}"
            r = client().put(f"{base}/Observation/{rid}", json={**body, "id": rid}, headers=FHIR)
            assert r.status_code in (200, 201), r.text[:200]

        def floor_read(i: int) -> None:
            db.resources.find_one({"_id": f"Observation/{random.choice(observation_ids)}"})

        def floor_vread(i: int) -> None:
            db.history.find_one({"_id": f"Observation/{random.choice(observation_ids)}/1"})

        def floor_create(i: int) -> None:
            floor_db.c.insert_one({"res": body})

        def floor_update(i: int) -> None:
            floor_db.u.replace_one({"_id": f"u{i % 50_000}"}, {"res": body}, upsert=True)

        for name, op, floor in (
            ("read", read, floor_read),
            ("vread", vread, floor_vread),
            ("create", create, floor_create),
            ("update", update, floor_update),
        ):
            for threads in (1, 16):
                rate, lat = run_for(args.seconds, threads, op)
                floor_rate, _ = run_for(args.seconds, threads, floor)
                rows.append((name, threads, rate, pct(lat, 0.5), pct(lat, 0.95), floor_rate, 0))
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
    print(
        f"\n{'operation':34} {'conc':>4} {'server/s':>9} {'p50 ms':>7} {'p95 ms':>7} "
        f"{'floor/s':>9} {'ratio':>6}"
    )
    for name, threads, rate, p50, p95, floor_rate, _ in rows:
        print(
            f"{name:34} {threads:>4} {rate:>9.0f} {p50:>7.1f} {p95:>7.1f} {floor_rate:>9.0f} "
            f"{rate / floor_rate:>6.0%}"
        )
    print(f"({resources} resources ingested from {len(bundles)} Synthea bundles)")


if __name__ == "__main__":
    main()
