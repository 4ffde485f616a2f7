"""No-show rates per patient and practitioner, so staff can act on them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from fhirhub.fhir.errors import BadRequest
from fhirhub.scheduling.directory import Directory
from fhirhub.scheduling.rules import appointments as appts
from fhirhub.scheduling.scheduler import check_patients_allowed
from fhirhub.storage.store import fhir_instant

# Appointments that were due to happen: attended or not.
DUE = frozenset({"booked", "arrived", "checked-in", "fulfilled", "noshow"})
DEFAULT_PERIOD = timedelta(days=365)


def rate(appointments: list[dict[str, Any]], now: datetime) -> tuple[int, int]:
    """(appointments that were due and have started, no-shows among them)."""
    due = noshow = 0
    for appointment in appointments:
        interval = appts.period(appointment)
        if appointment.get("status") not in DUE or interval is None or interval.start > now:
            continue
        due += 1
        noshow += appointment.get("status") == "noshow"
    return due, noshow


class NoShowRates:
    def __init__(self, directory: Directory, clock: Callable[[], datetime]):
        self.directory = directory
        self.clock = clock

    def parameters(
        self, actors: list[str], start: datetime | None, end: datetime | None
    ) -> dict[str, Any]:
        if not actors:
            raise BadRequest("name at least one patient or practitioner")
        check_patients_allowed([a for a in actors if a.startswith("Patient/")])
        now = self.clock()
        end = min(end or now, now)
        start = start or end - DEFAULT_PERIOD
        parts = []
        for actor in actors:
            query = f"actor={actor}&date=ge{fhir_instant(start)}&date=le{fhir_instant(end)}"
            due, noshow = rate(self.directory.find("Appointment", query, 10_000), now)
            parts.append(
                {
                    "name": "actor",
                    "part": [
                        {"name": "actor", "valueReference": {"reference": actor}},
                        {"name": "appointments", "valueInteger": due},
                        {"name": "noshow", "valueInteger": noshow},
                        {"name": "rate", "valueDecimal": round(noshow / due, 4) if due else 0},
                    ],
                }
            )
        return {"resourceType": "Parameters", "parameter": parts}
