"""Use cases: find free times, hold, book, cancel, reschedule (IHE ITI-115/116/117).

Writes go through the ResourceService like any client's (access policy, validation, the
booking guard's claims), so $book and a plain POST of a booked Appointment obey the same
conflict rule; $hold and $book also require the time to be within the actors' availability.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fhirhub.fhir.errors import BadRequest, Conflict, Forbidden, NotFound, Unprocessable
from fhirhub.scheduling import availability as avail
from fhirhub.scheduling.directory import Directory, Resource
from fhirhub.scheduling.rules import appointments as appts
from fhirhub.scheduling.rules.intervals import Interval, covers
from fhirhub.service import access
from fhirhub.service.resources import ResourceService
from fhirhub.timers.registry import Timers

HOLD_KIND = "scheduling.hold-expiry"
MAX_WINDOW = timedelta(days=92)
MAX_DURATION = timedelta(hours=24)
REPLACES = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Appointment.replaces"
CANCEL_SYSTEM = "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason"


@dataclass(frozen=True)
class FindRequest:
    window: Interval
    duration: timedelta
    practitioners: list[str]
    locations: list[str]
    specialties: list[str]  # tokens system|code
    services: list[str]
    patients: list[str]
    details: dict[str, Any]  # serviceType, specialty, appointmentType for the proposals
    count: int


class Scheduler:
    def __init__(
        self,
        resources: ResourceService,
        directory: Directory,
        timers: Timers,
        hold_ttl: timedelta,
        clock: Callable[[], datetime],
    ):
        self.resources = resources
        self.directory = directory
        self.timers = timers
        self.hold_ttl = hold_ttl
        self.clock = clock

    # -- $find -------------------------------------------------------------------------------

    def find(self, request: FindRequest) -> list[Resource]:
        check_patients_allowed(request.patients)
        earliest = max(request.window.start, self.clock())
        window = Interval(earliest, request.window.end)
        found: list[tuple[datetime, int, Resource]] = []
        for rank, item in enumerate(self._bookables(request)):
            free = avail.free_time(self.directory, item, window, request.patients)
            for n, start in enumerate(avail.starts(free, request.duration, item.zone, earliest)):
                if n >= request.count:
                    break
                resource = avail.proposal(
                    item, start, request.duration, request.patients, request.details
                )
                found.append((start, rank, resource))
        found.sort(key=lambda f: (f[0], f[1]))
        return [f[2] for f in found[: request.count]]

    def _bookables(self, request: FindRequest) -> list[avail.Bookable]:
        queries: list[str] = []
        for practitioner in request.practitioners:
            if self.directory.read(practitioner) is None:
                raise Unprocessable(f"{practitioner} is not known")
            queries.append(f"practitioner={practitioner}")
        for location in request.locations:
            if self.directory.read(location) is None:
                raise Unprocessable(f"{location} is not known")
        filters = [f"specialty={s}" for s in request.specialties]
        services: list[str] = []
        for service_type in request.services:
            services += [
                f"HealthcareService/{h['id']}"
                for h in self.directory.find("HealthcareService", f"service-type={service_type}")
            ]
        roles: dict[str, Resource] = {}
        for query in queries or [""]:
            criteria = "&".join(q for q in [query, "active=true"] if q)
            for role in self.directory.find("PractitionerRole", criteria, 500):
                roles[str(role["id"])] = role
        out = []
        for role in roles.values():
            if request.specialties and not self._matches(role, filters):
                continue
            role_locations = {str(r.get("reference")) for r in role.get("location") or []}
            if request.locations and not role_locations & set(request.locations):
                continue
            role_services = {str(r.get("reference")) for r in role.get("healthcareService") or []}
            if request.services and not role_services & set(services):
                continue
            item = avail.bookable(self.directory, role)
            if request.locations:
                chosen = next(loc for loc in request.locations if loc in role_locations)
                item = avail.at_location(self.directory, item, chosen)
            out.append(item)
        return out

    def _matches(self, role: Resource, filters: list[str]) -> bool:
        return any(self.directory.search.matches(f"PractitionerRole?{f}", role) for f in filters)

    # -- $hold and $book ---------------------------------------------------------------------

    def hold(
        self,
        proposed: Resource,
        ttl: timedelta | None = None,
        resource_id: str | None = None,
    ) -> tuple[Resource, bool]:
        """`ttl`, `resource_id`: a waitlist offer's longer hold, under an id of its own."""
        appointment = self._bookable_request(proposed, exclude=frozenset())
        appointment["status"] = "pending"
        stored = self.resources.create("Appointment", appointment, resource_id=resource_id).stored
        assert stored.resource is not None
        expires = self.clock() + (ttl or self.hold_ttl)
        self.timers.plan(
            f"{HOLD_KIND}:Appointment/{stored.resource_id}",
            HOLD_KIND,
            expires,
            {"appointment": stored.resource_id},
        )
        return stored.resource, True

    def book_held(self, reference: str) -> tuple[Resource, bool]:
        resource_id = _appointment_id(reference)
        stored = self.resources.read("Appointment", resource_id)
        held = stored.resource or {}
        if held.get("status") == "booked":
            return held, False  # booked already (a retried request)
        if held.get("status") != "pending":
            raise Conflict(
                f"Appointment/{resource_id} is {held.get('status')}, not held (pending): "
                "its hold may have expired; find and hold a time again"
            )
        booked = self._bookable_request(held, exclude=frozenset({resource_id}))
        booked["status"] = "booked"
        booked["id"] = resource_id
        result = self.resources.update(
            "Appointment", resource_id, booked, if_match=stored.etag
        ).stored
        self.timers.cancel(f"{HOLD_KIND}:Appointment/{resource_id}")
        assert result.resource is not None
        return result.resource, False

    def book_new(self, proposed: Resource) -> tuple[Resource, bool]:
        appointment = self._bookable_request(proposed, exclude=frozenset())
        appointment["status"] = "booked"
        stored = self.resources.create("Appointment", appointment).stored
        assert stored.resource is not None
        return stored.resource, True

    def reschedule(self, changed: Resource) -> tuple[Resource, bool]:
        """$book of an existing booked appointment with new details: a new Appointment
        that `replaces` it; the original is cancelled."""
        original_id = str(changed["id"])
        stored = self.resources.read("Appointment", original_id)
        original = stored.resource or {}
        if original.get("status") not in ("booked", "pending"):
            raise Conflict(f"Appointment/{original_id} is {original.get('status')}; not movable")
        new = {k: v for k, v in changed.items() if k not in ("id", "meta")}
        # R4 Appointment has no `replaces` (R5 does): the R5 element as its cross-version
        # extension.
        kept = [e for e in new.get("extension") or [] if e.get("url") != REPLACES]
        kept.append(
            {"url": REPLACES, "valueReference": {"reference": f"Appointment/{original_id}"}}
        )
        new["extension"] = kept
        appointment = self._bookable_request(new, exclude=frozenset({original_id}))
        appointment["status"] = "booked"
        # Cancel first (frees the original's time for a move that overlaps it), then book;
        # if booking fails, the original is put back.
        cancelled = self._cancelled(original, "Rescheduled", "pat")
        self.resources.update("Appointment", original_id, cancelled, if_match=stored.etag)
        try:
            created = self.resources.create("Appointment", appointment).stored
        except BaseException:
            current = self.resources.read("Appointment", original_id)
            self.resources.update(
                "Appointment",
                original_id,
                {**original, "id": original_id},
                if_match=current.etag,
            )
            raise
        assert created.resource is not None
        return created.resource, True

    def cancel(self, changed: Resource) -> tuple[Resource, bool]:
        resource_id = str(changed["id"])
        stored = self.resources.read("Appointment", resource_id)
        current = stored.resource or {}
        if current.get("status") == "cancelled":
            return current, False
        reason = changed.get("cancelationReason")
        cancelled = self._cancelled(current, None, None)
        if reason:
            cancelled["cancelationReason"] = reason
        result = self.resources.update("Appointment", resource_id, cancelled, if_match=stored.etag)
        assert result.stored.resource is not None
        return result.stored.resource, False

    def _cancelled(self, current: Resource, text: str | None, code: str | None) -> Resource:
        out = copy.deepcopy(current)
        out.pop("meta", None)
        out["status"] = "cancelled"
        if text or code:
            reason: dict[str, Any] = {"text": text} if text else {}
            if code:
                reason["coding"] = [{"system": CANCEL_SYSTEM, "code": code}]
            out["cancelationReason"] = reason
        return out

    def _bookable_request(self, proposed: Resource, exclude: frozenset[str]) -> Resource:
        """The appointment to write, after checking its time against availability."""
        appointment = copy.deepcopy(proposed)
        appointment.pop("meta", None)
        interval = appts.period(appointment)
        if interval is None:
            raise BadRequest("the appointment needs a start and an end")
        check_duration(interval)
        if interval.start < self.clock() - timedelta(minutes=1):
            raise Unprocessable("the appointment starts in the past")
        patients = appts.patients(appointment)
        if not patients:
            raise BadRequest("the appointment needs a Patient participant")
        check_patients_allowed(patients)
        for patient in patients:
            if self.directory.read(patient) is None:
                raise Unprocessable(f"{patient} is not known")
        item = self._bookable_for(appointment)
        free = avail.free_time(self.directory, item, interval, patients, exclude=exclude)
        if not covers(free, interval):
            raise Conflict(
                f"{item.practitioner or item.role_ref} is not available between "
                f"{appointment['start']} and {appointment['end']}"
            )
        for participant in appointment.get("participant") or []:
            if participant.get("status") in (None, "needs-action", "tentative"):
                participant["status"] = "accepted"
        appointment["minutesDuration"] = int((interval.end - interval.start).total_seconds() // 60)
        appointment.setdefault("created", self.clock().strftime("%Y-%m-%d"))
        return appointment

    def _bookable_for(self, appointment: Resource) -> avail.Bookable:
        refs = appts.actors_all(appointment)
        roles = [r for r in refs if r.startswith("PractitionerRole/")]
        practitioners = [r for r in refs if r.startswith("Practitioner/")]
        locations = [r for r in refs if r.startswith("Location/")]
        for ref in roles + practitioners + locations:
            if self.directory.read(ref) is None:
                raise Unprocessable(f"{ref} is not known")
        candidates: list[Resource] = []
        for ref in roles:
            found = self.directory.read(ref)
            if found:
                candidates.append(found)
        for practitioner in practitioners:
            candidates += self.directory.roles_of(practitioner)
        if not candidates:
            raise BadRequest("the appointment needs a Practitioner or PractitionerRole")
        interval = appts.period(appointment)
        assert interval is not None
        for role in candidates:  # the first role whose hours cover the time
            item = avail.bookable(self.directory, role)
            if locations:
                role_locations = {str(r.get("reference")) for r in role.get("location") or []}
                if not role_locations & set(locations):
                    continue
                item = avail.at_location(self.directory, item, locations[0])
            if covers(avail.free_time(self.directory, item, interval, []), interval):
                return item
        first = avail.bookable(self.directory, candidates[0])
        return avail.at_location(self.directory, first, locations[0]) if locations else first

    # -- hold expiry (a timer) ---------------------------------------------------------------

    def expire_hold(self, resource_id: str) -> str:
        try:
            stored = self.resources.read("Appointment", resource_id)
        except NotFound:
            return "gone"
        current = stored.resource or {}
        if current.get("status") != "pending":
            return f"no longer held ({current.get('status')})"
        cancelled = self._cancelled(current, "Hold expired", "oth-err")
        self.resources.update("Appointment", resource_id, cancelled, if_match=stored.etag)
        return "hold expired: cancelled"


def check_duration(interval: Interval) -> None:
    length = interval.end - interval.start
    if length <= timedelta(0):
        raise BadRequest("the end must be after the start")
    if length > MAX_DURATION:
        raise BadRequest("an appointment may last at most 24 hours")


def check_patients_allowed(patients: list[str]) -> None:
    """With a SMART token, every patient named must be one the token may read (a patient's
    app: only themselves), so nobody books or searches for someone else."""
    policy = access.active()
    if policy is None:
        return
    for patient in patients:
        if not patient.startswith("Patient/") or patient.count("/") != 1:
            raise BadRequest(f"{patient[:60]!r} is not a Patient reference")
        stub = {"resourceType": "Patient", "id": patient.split("/")[1]}
        if not policy.allows("r", "Patient", stub):
            raise Forbidden(f"the access token may not act for {patient}")


def _appointment_id(reference: str) -> str:
    tail = reference.rstrip("/").split("/")
    if len(tail) < 2 or tail[-2] != "Appointment":
        raise BadRequest(f"{reference[:80]!r} is not an Appointment reference")
    return tail[-1]
