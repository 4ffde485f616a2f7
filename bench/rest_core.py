"""REST core benchmark: the server through gunicorn versus raw pymongo on the same database.

Usage: .venv/bin/python bench/rest_core.py [--seconds 5] [--bundles 30] [--pg-set NAME=VALUE]...

Starts its own `fhirhub serve` (embedded database under var/bench, free ports, no seed),
ingests the Synthea transaction bundles from ../shared/fhir-corpus, then measures read,
vread, create and update at concurrency 1 and 16, and prints each next to the equivalent
pymongo operation (the floor) with the ratio server/floor. Not a test: numbers only.

The HTTP load for read, vread, create and update comes from wrk (a C load generator, `make
bench-deps`; script bench/wrk/rest.lua), not from Python threads: the machine has two CPUs,
and a Python client burns a large share of them and adds its own ~0.5 ms per request to the
latency it reports, so the server would be measured against its own load generator. wrk
runs at concurrency 1 as `-t1 -c1` and at 16 as `-t2 -c16` (keep-alive connections); any
socket error or unexpected status fails the bench. wrk takes whole seconds, so --seconds is
rounded for it. The floor and the transaction ingest stay in Python (pymongo, httpx).

--pg-set gives the embedded PostgreSQL a setting for this run only, for A/B runs of its
tuning (e.g. `--pg-set synchronous_commit=off` for what durable commits cost, or
`--pg-set commit_delay=200`): set on the database (ALTER DATABASE), which outranks the
server's command line, before FerretDB opens its connections.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
from pymongo import MongoClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import FHIR, cli_env, run_for, start_server  # noqa: E402

from fhirhub.embedded.ports import free_port  # noqa: E402
from fhirhub.embedded.postgres import PG_DATABASE, psql  # noqa: E402
from fhirhub.storage.documents import decode_resource  # noqa: E402
from tests.helpers import corpus_dir  # noqa: E402

# tests/helpers.py finds the corpus beside the checkout or at /work/shared (worktrees).
CORPUS = corpus_dir() / "synthea-r4" / "smart-on-fhir-generated-sample-data"
WRK_SCRIPT = Path(__file__).resolve().parent / "wrk" / "rest.lua"


def find_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit(
            "bench/rest_core.py drives the server with wrk, which is not installed: "
            "run `make bench-deps` (installs Debian's wrk)"
        )
    return wrk


def run_wrk(
    wrk: str, seconds: int, connections: int, url: str, headers: dict[str, str], *script_args: str
) -> tuple[float, float, float]:
    """Requests/s, p50 ms and p95 ms of a wrk run; exits if any request failed."""
    command = [
        wrk,
        f"--threads={1 if connections == 1 else 2}",
        f"--connections={connections}",
        f"--duration={seconds}s",
        "--timeout=60s",
        f"--script={WRK_SCRIPT}",
        *(f"--header={name}: {value}" for name, value in headers.items()),
        url,
        "--",
        *script_args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("wrk-result ")]
    if done.returncode != 0 or len(lines) != 1:
        raise SystemExit(f"wrk failed ({done.returncode}): {done.stderr.strip()}{done.stdout}")
    result = json.loads(lines[0].removeprefix("wrk-result "))
    socket_errors = sum(result[k] for k in ("connect", "read", "write", "timeout"))
    if (
        socket_errors
        or result["status"]
        or result["unexpected"]
        or not result["requests"]
        or "Socket errors" in done.stdout
        or "Non-2xx or 3xx responses" in done.stdout
    ):
        raise SystemExit(
            f"wrk {' '.join(script_args)} at {connections} connections: "
            f"{result['requests']} requests, socket errors (connect/read/write/timeout) "
            f"{result['connect']}/{result['read']}/{result['write']}/{result['timeout']}, "
            f"status >= 400: {result['status']}, unexpected status: {result['unexpected']} "
            f"(first: {result['first_unexpected']!r})\n{done.stdout}"
        )
    rate = result["requests"] / (result["duration_us"] / 1e6)
    return rate, result["p50_us"] / 1000, result["p95_us"] / 1000


UPDATE_POOL = 100  # ids each load thread updates in turn (no two in flight on one id)


def post_bundle(client: httpx.Client, base: str, bundle: bytes) -> None:
    response = client.post(base, content=bundle, headers=FHIR)
    assert response.status_code == 200, response.text[:300]


def floor_insert(floor_db: Any, bundle: dict[str, Any]) -> None:
    # Each resource twice (as the server keeps a version and a current document), in as
    # few insert commands as pymongo allows.
    docs = [{"res": e["resource"]} for e in bundle["entry"]]
    floor_db.x.insert_many(docs + [dict(d) for d in docs])


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


def preset_postgres(var_dir: Path, db_port: int, pg_port: int, settings: list[str]) -> None:
    """Create the bench's cluster and give its database `settings` (NAME=VALUE each)."""
    env = cli_env(var_dir, db_port, pg_port)
    command = [sys.executable, "-m", "fhirhub.cli", "db"]
    subprocess.run([*command, "start"], env=env, cwd=ROOT, check=True, capture_output=True)
    try:
        for setting in settings:
            name, _, value = setting.partition("=")
            if not name.replace("_", "").isalnum() or not value.replace(".", "").isalnum():
                raise SystemExit(f"--pg-set wants NAME=VALUE, got {setting!r}")
            try:  # per database where PostgreSQL allows it, else for the cluster
                psql(pg_port, f"alter database {PG_DATABASE} set {name} = '{value}'")
            except RuntimeError:
                psql(pg_port, f"alter system set {name} = '{value}'")
            print(f"PostgreSQL for this run: {name} = {value}", file=sys.stderr)
    finally:
        subprocess.run([*command, "stop"], env=env, cwd=ROOT, check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--bundles", type=int, default=30)
    parser.add_argument("--pg-set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument(
        "--only", default="read,vread,create,update", help="wrk operations to run (after ingest)"
    )
    args = parser.parse_args()
    wrk = find_wrk()
    wrk_seconds = max(1, round(args.seconds))
    scratch = tempfile.TemporaryDirectory(prefix="fhirhub-bench-")
    var_dir = ROOT / "var" / "bench"
    subprocess.run(["rm", "-rf", str(var_dir)], check=True)
    db_port, pg_port = free_port(), free_port()
    if args.pg_set:
        preset_postgres(var_dir, db_port, pg_port, args.pg_set)
    proc, base, uri, auth = start_server(var_dir, db_port, pg_port)
    local = threading.local()

    def client() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(timeout=60, headers=auth)
        return local.client

    rows: list[tuple[str, int, float, float, float, float, float]] = []
    try:
        db = MongoClient(uri)["bench"]
        bundles = [json.loads(p.read_text()) for p in sorted(CORPUS.glob("*.json"))][: args.bundles]
        if not bundles:
            raise SystemExit(f"no Synthea bundles in {CORPUS}")
        resources = sum(len(b["entry"]) for b in bundles)
        floor_db = db.client["bench_floor"]
        # All bundles are posted by one client, then all again by two at once (an importer
        # with two connections): every entry is a POST, so the second round creates new
        # resources too. Each round is the whole set, so the last bundle of a round, which
        # one client posts while the other has nothing left, weighs little. The floor
        # inserts the same resources as documents, twice (version + current, as the server
        # keeps both). Bodies are encoded once: the client's JSON encoding would otherwise
        # compete with the server for the same two CPUs.
        assert all(e["request"]["method"] == "POST" for b in bundles for e in b["entry"])
        encoded = [orjson.dumps(b) for b in bundles]
        for threads in (1, 2):
            rate = resources / timed_in_threads(
                threads, encoded, lambda b: post_bundle(client(), base, b)
            )
            floor = resources / timed_in_threads(
                threads, bundles, lambda b: floor_insert(floor_db, b)
            )
            rows.append(("transaction ingest (resources/s)", threads, rate, 0, 0, floor, 0))

        cursor = db.resources.find({"t": "Observation"}, {"rid": 1}).limit(500)
        observation_ids = [d["rid"] for d in cursor]
        sample = db.resources.find_one({"t": "Observation"})
        assert sample is not None
        body = dict(decode_resource(sample["res"]) or {})
        body.pop("meta", None)
        body.pop("id", None)

        def floor_read(i: int) -> None:
            db.resources.find_one({"_id": f"Observation/{random.choice(observation_ids)}"})

        def floor_vread(i: int) -> None:
            # Version documents share the resources collection (fhirhub/storage/documents.py).
            db.resources.find_one({"_id": f"Observation/{random.choice(observation_ids)}/1"})

        def floor_create(i: int) -> None:
            floor_db.c.insert_one({"res": body})

        def floor_update(i: int) -> None:
            # Like the server run: each thread cycles through its own UPDATE_POOL ids.
            thread, n = divmod(i, 1_000_000)
            key = f"u-{thread}-{n % UPDATE_POOL}"
            floor_db.u.replace_one({"_id": key}, {"res": body}, upsert=True)

        # What wrk sends (bench/wrk/rest.lua): files in a temporary directory.
        files = Path(scratch.name)
        (files / "read").write_text("".join(f"Observation/{i}\n" for i in observation_ids))
        (files / "vread").write_text(
            "".join(f"Observation/{i}/_history/1\n" for i in observation_ids)
        )
        (files / "body.json").write_text(json.dumps(body))
        (files / "template.json").write_text(json.dumps({**body, "id": "__ID__"}))

        def wrk_args(name: str, threads: int) -> tuple[str, list[str]]:
            """URL and script arguments (mode, file, [id prefix], expected statuses)."""
            if name in ("read", "vread"):
                return f"{base}/", ["paths", str(files / name), "200"]
            if name == "create":
                return f"{base}/Observation", ["post", str(files / "body.json"), "201"]
            # Ids u-<wrk thread>-<n mod UPDATE_POOL>: the first PUT to each is an
            # update-as-create, every later one a real update of an existing resource.
            template = str(files / "template.json")
            pool = str(UPDATE_POOL)
            return f"{base}/Observation", ["put", template, "u", pool, "200", "201"]

        operations = (
            ("read", floor_read),
            ("vread", floor_vread),
            ("create", floor_create),
            ("update", floor_update),
        )
        for name, floor in operations:
            if name not in args.only.split(","):
                continue
            for threads in (1, 16):
                url, script_args = wrk_args(name, threads)
                rate, p50, p95 = run_wrk(wrk, wrk_seconds, threads, url, auth, *script_args)
                floor_rate, _ = run_for(args.seconds, threads, floor)
                rows.append((name, threads, rate, p50, p95, floor_rate, 0))
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
        scratch.cleanup()
    print(
        f"\n{'operation':34} {'conc':>4} {'server/s':>9} {'p50 ms':>7} {'p95 ms':>7} "
        f"{'floor/s':>9} {'ratio':>6}"
    )
    for name, threads, rate, p50, p95, floor_rate, _ in rows:
        print(
            f"{name:34} {threads:>4} {rate:>9.0f} {p50:>7.1f} {p95:>7.1f} {floor_rate:>9.0f} "
            f"{rate / floor_rate:>6.0%}"
        )
    print(f"({resources} resources from {len(bundles)} Synthea bundles, ingested twice)")


if __name__ == "__main__":
    main()
