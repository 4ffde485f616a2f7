"""Database commands and worker CPU per reading on the monitoring path (load-independent).

Usage: .venv/bin/python bench/monitoring_ops.py [--patients 20]

Starts a private embedded database, sets up --patients patients each with an RPM CarePlan
(heart rate) and a CareTeam with an Endpoint, then for each patient writes readings one at a
time and runs, in this process and thread, the worker's dispatcher pass and then its due
reactions, counting the MongoDB commands each issues (a pymongo CommandListener) and the
CPU time spent. Rows: a first in-range reading of a patient, a second one, an out-of-range
one (opens the alert), one more out-of-range (updates it). The delivery to the Endpoint is
not run (bench/notifications.py measures that). Not a test: numbers only.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pymongo import monitoring

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fhirhub.config import Settings  # noqa: E402
from fhirhub.embedded.database import EmbeddedDatabase  # noqa: E402
from fhirhub.embedded.ports import free_port  # noqa: E402
from fhirhub.hub import Hub  # noqa: E402
from fhirhub.worker.runner import NotificationWorker  # noqa: E402

LOINC = "http://loinc.org"
RPM = {"system": "https://fhirhub.example/fhir/CodeSystem/monitoring", "code": "rpm"}


class Commands(monitoring.CommandListener):
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.counts[event.command_name] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def reading(patient: str, value: float, minutes_ago: float) -> dict[str, Any]:
    when = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
        "subject": {"reference": patient},
        "effectiveDateTime": when.isoformat(timespec="milliseconds"),
        "valueQuantity": {
            "value": value,
            "unit": "/min",
            "system": "http://unitsofmeasure.org",
            "code": "/min",
        },
    }


def enrol(hub: Hub, p: int) -> str:
    create = hub.resources.create
    patient = f"Patient/{create('Patient', {'resourceType': 'Patient'}).stored.resource_id}"
    endpoint = create(
        "Endpoint",
        {
            "resourceType": "Endpoint",
            "status": "active",
            "connectionType": {
                "system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
                "code": "hl7-fhir-rest",
            },
            "payloadType": [{"text": "any"}],
            "address": f"http://127.0.0.1:9/ep{p}",
        },
    ).stored.resource_id
    role = create(
        "PractitionerRole",
        {
            "resourceType": "PractitionerRole",
            "active": True,
            "endpoint": [{"reference": f"Endpoint/{endpoint}"}],
        },
    ).stored.resource_id
    member = {"member": {"reference": f"PractitionerRole/{role}"}}
    team = {"resourceType": "CareTeam", "status": "active", "subject": {"reference": patient}}
    create("CareTeam", {**team, "participant": [member]})
    detail = {"status": "in-progress", "code": {"coding": [{"system": LOINC, "code": "8867-4"}]}}
    plan = {
        "resourceType": "CarePlan",
        "status": "active",
        "intent": "plan",
        "category": [{"coding": [RPM]}],
        "subject": {"reference": patient},
        "activity": [{"detail": detail}],
    }
    create("CarePlan", plan)
    return patient


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--patients", type=int, default=20)
    args = parser.parse_args()
    base = Settings(cache_dir=ROOT / ".cache", tools_dir=ROOT / ".tools", seed_on_empty=False)
    database = EmbeddedDatabase(
        root=Path(tempfile.mkdtemp(prefix="fhirhub-ops-")) / "db",
        tools_dir=base.tools_dir,
        port=free_port(),
        backend="postgresql",
        pg_port=free_port(),
    )
    database.start()
    commands = Commands()
    try:
        settings = base.with_overrides(mongodb_uri=database.uri, db_name="ops", auth=False)
        monitoring.register(commands)  # before the hub's client is made (storage/mongo.py)
        hub = Hub(settings)
        hub.store.ensure_indexes()
        hub.timer_store.ensure_indexes()
        worker = NotificationWorker(hub)
        patients = [enrol(hub, p) for p in range(args.patients)]
        worker.dispatcher.run_once()
        worker.timers.run_now()
        rows: dict[str, list[tuple[int, int, float]]] = {}
        steps = [("in range, first", 70, 40), ("in range, again", 72, 30)]
        steps += [("out of range: opens", 131, 20), ("out of range: updates", 135, 10)]
        for label, value, minutes_ago in steps:
            for patient in patients:
                hub.resources.create("Observation", reading(patient, value, minutes_ago))
                commands.counts.clear()
                worker.dispatcher.run_once()
                dispatch = sum(commands.counts.values())
                commands.counts.clear()
                cpu = time.process_time()
                worker.timers.run_now()
                reacting = sum(commands.counts.values())
                rows.setdefault(label, []).append((dispatch, reacting, time.process_time() - cpu))
        print("| reading | dispatcher commands | reaction commands | reaction CPU ms |")
        print("|---|---|---|---|")
        for label, found in rows.items():
            n = len(found)
            d, r, c = (sum(x[i] for x in found) / n for i in range(3))
            print(f"| {label} | {d:.1f} | {r:.1f} | {c * 1000:.1f} |")
        hub.close()
    finally:
        database.stop()


if __name__ == "__main__":
    main()
