"""Enrolments kept between readings, dropped by the changes that can alter them.

Working out a patient's enrolment reads their CarePlans, its Goals, the Patient (for the
managing organisation) and maybe their Devices: several searches per reading. A patient
sends many readings between changes to those, so each worker process keeps the answer per
patient with the patient's change token (storage/generations.py). The dispatcher replaces
that token, before it plans the reactions of a batch, for every patient a CarePlan, Goal,
Device or Patient change in the batch touches (the version before an update too: a plan
moved to another subject stops enrolling the first). A reading's reaction reads the token
first and then, on a mismatch, the resources, so it never judges with an enrolment older
than a change committed before the reading was dispatched, in whichever process.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from fhirhub.monitoring.enrolment.plans import Enrolment
from fhirhub.storage.generations import GenerationStore
from fhirhub.subscriptions.events import ChangeEvent

WATCHED = frozenset({"CarePlan", "Goal", "Device", "Patient"})
SIZE = 50_000  # patients kept per process (a few hundred bytes each)
NAMESPACE = "monitoring-enrolment:"

# (type, id, version) -> that version's resource, or None (deleted or absent)
VersionReader = Callable[[str, str, int], dict[str, Any] | None]


def patients_of(resource: dict[str, Any] | None) -> set[str]:
    """The patients whose enrolment a CarePlan, Goal, Device or Patient version bears on."""
    if not isinstance(resource, dict):
        return set()
    if resource.get("resourceType") == "Patient":
        return {f"Patient/{resource.get('id')}"}
    element = "patient" if resource.get("resourceType") == "Device" else "subject"
    reference = (resource.get(element) or {}).get("reference")
    if isinstance(reference, str) and reference.startswith("Patient/"):
        return {reference}
    return set()


class EnrolmentCache:
    def __init__(self, tokens: GenerationStore, size: int = SIZE):
        self.tokens = tokens
        self.size = size
        self._entries: OrderedDict[str, tuple[str | None, Enrolment | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, patient: str, compute: Callable[[], Enrolment | None]) -> Enrolment | None:
        token = self.tokens.token(NAMESPACE + patient)  # before the data it guards
        with self._lock:
            found = self._entries.get(patient)
            if found is not None and found[0] == token:
                self._entries.move_to_end(patient)
                return found[1]
        enrolment = compute()
        with self._lock:
            self._entries[patient] = (token, enrolment)
            self._entries.move_to_end(patient)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return enrolment


def invalidator(
    tokens: GenerationStore, previous: VersionReader
) -> Callable[[list[ChangeEvent]], None]:
    """The dispatcher's listener: new tokens for the patients a batch's changes touch."""

    def handle(events: list[ChangeEvent]) -> None:
        touched: set[str] = set()
        for event in events:
            touched |= patients_of(event.resource)
            if event.resource_type != "Patient" and event.version > 1 and not event.deleted:
                before = previous(event.resource_type, event.resource_id, event.version - 1)
                touched |= patients_of(before)
            if event.resource_type == "Patient":
                touched.add(event.reference)
        if touched:
            tokens.bump(NAMESPACE + p for p in touched)

    return handle
