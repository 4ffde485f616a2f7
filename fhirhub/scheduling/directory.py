"""Reading what scheduling needs (roles, schedules, slots, appointments), outside the
caller's access policy: availability and conflicts depend on everyone's bookings, though
what a caller sees of them is only free/busy time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fhirhub.fhir.errors import FhirError
from fhirhub.scheduling.rules import appointments as appts
from fhirhub.scheduling.rules.intervals import Interval
from fhirhub.scheduling.rules.timezones import zone_of
from fhirhub.service import access
from fhirhub.service.search import SearchService
from fhirhub.storage.store import ResourceStore, fhir_instant

Resource = dict[str, Any]
OVERBOOKING = "https://fhirhub.example/fhir/StructureDefinition/schedule-overbooking"
MAX_FOUND = 1000


class Directory:
    def __init__(self, store: ResourceStore, search: SearchService, default_zone: ZoneInfo) -> None:
        self.store = store
        self.search = search
        self.default_zone = default_zone

    def read(self, reference: str) -> Resource | None:
        if reference.count("/") != 1:
            return None
        resource_type, resource_id = reference.split("/")
        try:
            stored = self.store.current(resource_type, resource_id)
        except FhirError:
            return None
        if stored is None or stored.deleted:
            return None
        return stored.resource

    def find(self, resource_type: str, query: str, limit: int = MAX_FOUND) -> list[Resource]:
        with access.unrestricted():
            return self.search.find_resources(resource_type, query, limit)

    # -- actors ------------------------------------------------------------------------------

    def person(self, reference: str) -> str:
        """A PractitionerRole stands for its practitioner (one person, one calendar)."""
        if reference.startswith("PractitionerRole/"):
            role = self.read(reference) or {}
            practitioner = (role.get("practitioner") or {}).get("reference")
            if isinstance(practitioner, str) and practitioner.startswith("Practitioner/"):
                return practitioner
        return reference

    def claimed_actors(self, appointment: Resource) -> list[str]:
        out: list[str] = []
        for actor in appts.actors(appointment):
            person = self.person(actor)
            if person not in out:
                out.append(person)
        return out

    def claim_keys(self, appointment: Resource) -> list[str]:
        interval = appts.period(appointment)
        if interval is None or not appts.blocking(appointment):
            return []
        return appts.claim_keys(self.claimed_actors(appointment), interval)

    def capacity(self, actor: str) -> int:
        """Appointments an actor may have at once: 1 unless a Schedule of it allows
        overbooking (extension schedule-overbooking, a positive integer)."""
        best = 1
        for schedule in self.find("Schedule", f"actor={actor}", 50):
            if schedule.get("active") is False:
                continue
            for extension in schedule.get("extension") or []:
                if extension.get("url") == OVERBOOKING:
                    value = extension.get("valuePositiveInt") or extension.get("valueInteger")
                    if isinstance(value, int) and value > best:
                        best = value
        return best

    def zone(self, role: Resource | None) -> ZoneInfo:
        """The zone of a role's (first) location, else its organization's, else default."""
        location = organization = None
        if role:
            for ref in role.get("location") or []:
                location = self.read(str(ref.get("reference", "")))
                if location:
                    break
            org_ref = (role.get("organization") or {}).get("reference")
            organization = self.read(org_ref) if isinstance(org_ref, str) else None
            if location and organization is None:
                managing = (location.get("managingOrganization") or {}).get("reference")
                organization = self.read(managing) if isinstance(managing, str) else None
        return zone_of(location, organization, default=self.default_zone)

    # -- busy time ---------------------------------------------------------------------------

    def appointments_of(self, actor: str, window: Interval) -> list[Resource]:
        """Blocking appointments of an actor (or of its roles) that overlap `window`."""
        refs = [actor]
        if actor.startswith("Practitioner/"):
            refs += [f"PractitionerRole/{r['id']}" for r in self.roles_of(actor)]
        low = fhir_instant(window.start - timedelta(days=1))
        high = fhir_instant(window.end + timedelta(days=1))
        found: dict[str, Resource] = {}
        for ref in refs:
            for appointment in self.find("Appointment", f"actor={ref}&date=ge{low}&date=le{high}"):
                interval = appts.period(appointment)
                if appts.blocking(appointment) and interval and interval.overlaps(window):
                    found[str(appointment.get("id"))] = appointment
        return list(found.values())

    def roles_of(self, practitioner: str) -> list[Resource]:
        return self.find("PractitionerRole", f"practitioner={practitioner}", 50)

    def schedules_of(self, actors: list[str]) -> list[Resource]:
        found: dict[str, Resource] = {}
        for actor in actors:
            for schedule in self.find("Schedule", f"actor={actor}", 50):
                if schedule.get("active") is not False:
                    found[str(schedule["id"])] = schedule
        return list(found.values())

    def slots_of(self, schedule_id: str, window: Interval) -> list[Resource]:
        low = fhir_instant(window.start - timedelta(days=1))
        return [
            s
            for s in self.find("Slot", f"schedule=Schedule/{schedule_id}&start=ge{low}")
            if (p := _slot_period(s)) is not None and p.overlaps(window)
        ]


def _slot_period(slot: Resource) -> Interval | None:
    return appts.period(slot)


Reader = Callable[[str], Resource | None]
