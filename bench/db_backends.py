"""Compare FerretDB backends (or any MongoDB-wire servers) on the access patterns fhirhub uses.

Usage: python bench/db_backends.py NAME=URI [NAME=URI ...] [--docs N]

For each server: bulk insert N Observation-shaped documents, then time
  - find_one by string _id (read by id)
  - find_one by top-level scalar field (current-version lookup key)
  - find by top-level array-of-strings token field (patient-scoped search)
  - update_one by _id with a version guard (the write path's compare-and-set)
and print median/p95 latency per operation. Results are documented in the README.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

from pymongo import MongoClient


def make_doc(i: int) -> dict[str, object]:
    return {
        "_id": f"Observation/{i}",
        "rid": str(i),
        "v": 1,
        "patient": f"Patient/p{i % 500}",
        "tokens": [f"http://loinc.org|{8000 + i % 50}", f"vital-signs|{i % 3}"],
        "resource": {
            "resourceType": "Observation",
            "id": str(i),
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": str(8000 + i % 50)}]},
            "subject": {"reference": f"Patient/p{i % 500}"},
            "valueQuantity": {"value": i % 200, "unit": "mmHg"},
        },
    }


def timed(fn: Callable[[int], object], n: int) -> tuple[float, float]:
    samples = []
    for k in range(n):
        t0 = time.perf_counter()
        fn(k)
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def run(name: str, uri: str, ndocs: int, nops: int) -> dict[str, tuple[float, float]]:
    client: MongoClient[dict[str, object]] = MongoClient(uri, serverSelectionTimeoutMS=5000)
    coll = client["bench_backends"]["obs"]
    coll.drop()
    coll.create_index("patient")
    coll.create_index("tokens")
    coll.create_index("rid")
    rnd = random.Random(1)
    results: dict[str, tuple[float, float]] = {}
    t0 = time.perf_counter()
    for start in range(0, ndocs, 1000):
        coll.insert_many([make_doc(i) for i in range(start, min(ndocs, start + 1000))])
    insert_s = time.perf_counter() - t0
    results["insert (docs/s)"] = (ndocs / insert_s, ndocs / insert_s)
    results["find_one _id"] = timed(
        lambda k: coll.find_one({"_id": f"Observation/{rnd.randrange(ndocs)}"}), nops
    )
    results["find_one rid"] = timed(
        lambda k: coll.find_one({"rid": str(rnd.randrange(ndocs))}), nops
    )
    results["find patient"] = timed(
        lambda k: list(coll.find({"patient": f"Patient/p{rnd.randrange(500)}"})), nops // 4
    )
    results["find token"] = timed(
        lambda k: list(
            coll.find({"tokens": f"http://loinc.org|{8000 + rnd.randrange(50)}"}).limit(20)
        ),
        nops // 4,
    )

    def update(k: int) -> None:
        i = rnd.randrange(ndocs)
        doc = coll.find_one({"_id": f"Observation/{i}"})
        assert doc is not None
        coll.update_one({"_id": doc["_id"], "v": doc["v"]}, {"$set": {"v": int(doc["v"]) + 1}})  # type: ignore[call-overload]

    results["cas update"] = timed(update, nops)
    coll.drop()
    client.close()
    print(f"\n{name}  ({ndocs} docs, {nops} ops)")
    for op, (p50, p95) in results.items():
        if op.startswith("insert"):
            print(f"  {op:<18} {p50:10.0f}")
        else:
            print(f"  {op:<18} p50 {p50:8.2f} ms   p95 {p95:8.2f} ms")
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("servers", nargs="+", help="NAME=mongodb://host:port/")
    parser.add_argument("--docs", type=int, default=20000)
    parser.add_argument("--ops", type=int, default=400)
    args = parser.parse_args()
    for spec in args.servers:
        name, _, uri = spec.partition("=")
        run(name, uri, args.docs, args.ops)


if __name__ == "__main__":
    main()
