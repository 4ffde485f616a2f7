"""Medication safety benchmark: the write-path check's cost and CDS Hooks latency.

Usage: .venv/bin/python bench/medication.py [--patients 1000] [--bench-patients 60]
                                            [--creates 400] [--calls 200]

Starts its own `fhirhub serve` (auth on, admin token, no worker; embedded database under
var/bench-medication, free ports, no seed) and loads --patients background patients with
10 active MedicationRequests and 5 AllergyIntolerances each through batch Bundles (so the
database holds a known patients x 15 medication records, each order checked on the way in;
when this was measured `fhirhub seed` stopped on a booking conflict). The measured patients
(--bench-patients) have the same set-up, the issue's "10 active medications and 5
allergies on file".

1. MedicationRequest create, A/B interleaved in one run: a `completed` order (not checked:
   validation, indexing and the durable write only) and an `active` one (the same plus the
   safety check: the patient's current medications and allergies read by index, the rules,
   contained DetectedIssues for the findings). Same patient, same product, alternating, so
   machine load hits both alike; the checked order is then stopped (not measured) so every
   patient keeps 10 current medications. Added cost = checked - plain at p50 and p95.
2. CDS Hooks: `order-sign` with 3 draft orders (an antihistamine, an NSAID against an NSAID
   allergy and an ACE inhibitor, a penicillin against a penicillin allergy) with and without
   prefetch (without: the service reads this server), and `order-select` of one of them.
Not a test: numbers only. Give `uptime` with any number quoted.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from harness import FHIR, pct, start_server  # noqa: E402

from fhirhub.embedded.ports import free_port  # noqa: E402

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
ON_FILE = [  # ten chronic medications, no high-severity pair among them
    ("860975", "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet"),
    ("259255", "Atorvastatin 80 MG Oral Tablet"),
    ("314076", "lisinopril 10 MG Oral Tablet"),
    ("308136", "amLODIPine 2.5 MG Oral Tablet"),
    ("966222", "levothyroxine sodium 0.075 MG Oral Tablet"),
    ("866414", "24 HR metoprolol succinate 100 MG Extended Release Oral Tablet [Toprol]"),
    ("316049", "Hydrochlorothiazide 25 MG"),
    ("312938", "sertraline 100 MG Oral Tablet"),
    ("745679", "200 ACTUAT Albuterol 0.09 MG/ACTUAT Metered Dose Inhaler"),
    ("979485", "losartan potassium 25 MG Oral Tablet"),
]
ALLERGIES = [  # SNOMED CT substances (allergy_classes.json)
    ("764146007", "Penicillin"),
    ("387406002", "Sulfonamide"),
    ("387207008", "Ibuprofen"),
    ("373529000", "Morphine"),
    ("385420005", "Contrast media"),
]
NEW = ("1014678", "cetirizine hydrochloride 10 MG Oral Tablet")
DRAFTS = [
    NEW,
    ("310965", "Ibuprofen 200 MG Oral Tablet"),
    ("308192", "Amoxicillin 500 MG Oral Tablet"),
]


def medication_request(pid: str, code: str, display: str, status: str) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "status": status,
        "intent": "order",
        "subject": {"reference": f"Patient/{pid}"},
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": code, "display": display}]
        },
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [
                    {
                        "doseQuantity": {
                            "value": 1,
                            "unit": "tablet",
                            "code": "{tbl}",
                            "system": UCUM,
                        }
                    }
                ],
            }
        ],
    }


def allergy(pid: str, code: str, display: str) -> dict[str, Any]:
    return {
        "resourceType": "AllergyIntolerance",
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                    "code": "active",
                }
            ]
        },
        "category": ["medication"],
        "criticality": "high",
        "code": {"coding": [{"system": SNOMED, "code": code, "display": display}]},
        "patient": {"reference": f"Patient/{pid}"},
    }


def post(client: httpx.Client, base: str, resource: dict[str, Any]) -> dict[str, Any]:
    response = client.post(f"{base}/{resource['resourceType']}", json=resource, headers=FHIR)
    if response.status_code != 201:
        raise SystemExit(
            f"{resource['resourceType']}: {response.status_code} {response.text[:300]}"
        )
    return dict(response.json())


def background(client: httpx.Client, base: str, patients: int, per_batch: int = 5) -> float:
    """Loads the background patients; returns resources/s."""
    started, written = time.monotonic(), 0

    def entry(resource: dict[str, Any], method: str = "POST") -> dict[str, Any]:
        url = resource["resourceType"]
        if method == "PUT":
            url += f"/{resource['id']}"
        return {"resource": resource, "request": {"method": method, "url": url}}

    for first in range(0, patients, per_batch):
        entries = []
        for n in range(first, min(patients, first + per_batch)):
            pid = f"bg-{n}"
            entries.append(entry({"resourceType": "Patient", "id": pid}, "PUT"))
            entries += [entry(medication_request(pid, c, d, "active")) for c, d in ON_FILE]
            entries += [entry(allergy(pid, c, d)) for c, d in ALLERGIES]
        bundle = {"resourceType": "Bundle", "type": "batch", "entry": entries}
        response = client.post(base, json=bundle, headers=FHIR)
        statuses = [e["response"]["status"][:3] for e in response.json().get("entry", [])]
        if response.status_code != 200 or any(s not in ("200", "201") for s in statuses):
            raise SystemExit(f"background batch: {response.status_code} {response.text[:300]}")
        written += len(entries)
    return written / (time.monotonic() - started)


def set_up(client: httpx.Client, base: str, count: int) -> list[str]:
    pids = []
    for n in range(count):
        pid = post(client, base, {"resourceType": "Patient", "name": [{"family": f"Med{n}"}]})["id"]
        for code, display in ON_FILE:
            post(client, base, medication_request(pid, code, display, "active"))
        for code, display in ALLERGIES:
            post(client, base, allergy(pid, code, display))
        pids.append(pid)
    return pids


def timed_create(
    client: httpx.Client, base: str, resource: dict[str, Any]
) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    response = client.post(f"{base}/MedicationRequest", json=resource, headers=FHIR)
    elapsed = time.perf_counter() - started
    if response.status_code != 201:
        raise SystemExit(f"create: {response.status_code} {response.text[:300]}")
    return elapsed, dict(response.json())


def creates(
    client: httpx.Client, base: str, pids: list[str], count: int
) -> tuple[list[float], list[float]]:
    plain: list[float] = []
    checked: list[float] = []
    for i in range(count):
        pid = pids[i % len(pids)]
        order = [("completed", plain), ("active", checked)]
        if i % 2:
            order.reverse()  # alternate which goes first
        for status, into in order:
            elapsed, stored = timed_create(client, base, medication_request(pid, *NEW, status))
            into.append(elapsed)
            if status == "active":
                stored["status"] = "stopped"
                client.put(f"{base}/MedicationRequest/{stored['id']}", json=stored, headers=FHIR)
    return plain, checked


def cds_request(
    pid: str, hook: str, prefetch: bool, base: str, on_file: list[Any]
) -> dict[str, Any]:
    drafts = [
        {**medication_request(pid, c, d, "draft"), "id": f"draft-{i}"}
        for i, (c, d) in enumerate(DRAFTS)
    ]
    context: dict[str, Any] = {
        "userId": "Practitioner/bench",
        "patientId": pid,
        "draftOrders": {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": d} for d in drafts],
        },
    }
    if hook == "order-select":
        context["selections"] = ["MedicationRequest/draft-1"]
    body: dict[str, Any] = {
        "hook": hook,
        "hookInstance": str(uuid.uuid4()),
        "fhirServer": base,
        "context": context,
    }
    if prefetch:
        meds, allergies = on_file
        body["prefetch"] = {
            "patient": {"resourceType": "Patient", "id": pid},
            "medications": meds,
            "statements": {"resourceType": "Bundle", "type": "searchset"},
            "allergies": allergies,
        }
    return body


def cds(
    client: httpx.Client, base: str, pids: list[str], hook: str, prefetch: bool, calls: int
) -> list[float]:
    root = base.removesuffix("/fhir")
    service = "medication-order-sign" if hook == "order-sign" else "medication-order-select"
    files = {}
    if prefetch:
        for pid in pids:
            meds = client.get(
                f"{base}/MedicationRequest?subject=Patient/{pid}&status=active,draft,on-hold"
            ).json()
            allergies = client.get(f"{base}/AllergyIntolerance?patient=Patient/{pid}").json()
            files[pid] = [meds, allergies]
    out = []
    for i in range(calls):
        pid = pids[i % len(pids)]
        request = cds_request(pid, hook, prefetch, base, files.get(pid, []))
        started = time.perf_counter()
        response = client.post(f"{root}/cds-services/{service}", json=request)
        out.append(time.perf_counter() - started)
        if response.status_code != 200 or not response.json()["cards"]:
            raise SystemExit(f"{hook}: {response.status_code} {response.text[:300]}")
    return out


def row(name: str, values: list[float]) -> str:
    return f"| {name} | {len(values)} | {pct(values, 0.5):.1f} | {pct(values, 0.95):.1f} |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=2000, help="background patients")
    parser.add_argument("--bench-patients", type=int, default=60)
    parser.add_argument("--creates", type=int, default=400, help="pairs of creates")
    parser.add_argument("--calls", type=int, default=200, help="calls per CDS case")
    parser.add_argument("--var-dir", type=Path, default=ROOT / "var" / "bench-medication")
    args = parser.parse_args()
    var_dir: Path = args.var_dir.resolve()
    if var_dir.exists():
        shutil.rmtree(var_dir)
    var_dir.mkdir(parents=True)
    proc, base, _, auth = start_server(var_dir, free_port(), free_port())
    try:
        client = httpx.Client(timeout=300, headers=auth)
        rate = background(client, base, args.patients)
        seeded = (
            f"{args.patients} background patients x (10 medications + 5 allergies) "
            f"loaded at {rate:.0f} resources/s"
        )
        print(seeded, flush=True)
        pids = set_up(client, base, args.bench_patients)
        random.seed(1)
        creates(client, base, pids, 20)  # warm-up, not counted
        load = os.getloadavg()
        plain, checked = creates(client, base, pids, args.creates)
        sign = cds(client, base, pids, "order-sign", False, args.calls)
        sign_prefetch = cds(client, base, pids, "order-sign", True, args.calls)
        select = cds(client, base, pids, "order-select", False, args.calls)
        after = os.getloadavg()
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=120)
    print(f"\n{seeded}; {args.bench_patients} bench patients x 10 medications + 5 allergies")
    print(f"load average {load[0]:.1f} before, {after[0]:.1f} after (2 cores)\n")
    print("| request | n | p50 ms | p95 ms |\n|---|---|---|---|")
    print(row("MedicationRequest create, completed (not checked)", plain))
    print(row("MedicationRequest create, active (checked)", checked))
    print(
        f"| **added by the check** | | {pct(checked, 0.5) - pct(plain, 0.5):.1f} | "
        f"{pct(checked, 0.95) - pct(plain, 0.95):.1f} |"
    )
    print(row("CDS order-sign, 3 drafts, data read from this server", sign))
    print(row("CDS order-sign, 3 drafts, with prefetch", sign_prefetch))
    print(row("CDS order-select, 1 of 3 drafts, data read from this server", select))


if __name__ == "__main__":
    main()
