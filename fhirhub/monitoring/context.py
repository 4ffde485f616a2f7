"""What the monitoring reactions read and write through (the services, as the API does)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fhirhub.fhir.errors import FhirError
from fhirhub.monitoring.enrolment.cache import EnrolmentCache
from fhirhub.monitoring.enrolment.plans import Enrolment, from_plan, is_rpm_plan
from fhirhub.monitoring.readings.observations import readings
from fhirhub.monitoring.readings.units import BY_NAME, LOINC, PANEL_BP
from fhirhub.monitoring.rules.table import Knowledge
from fhirhub.monitoring.rules.verdicts import Point
from fhirhub.service.resources import ResourceService
from fhirhub.service.search import SearchService
from fhirhub.storage.conditional_claims import ClaimStore
from fhirhub.storage.timers import TimerStore
from fhirhub.timers.registry import Timers

HISTORY = timedelta(days=8)  # longest trend window (7 days) plus a margin
MAX_READINGS = 2000


@dataclass
class Context:
    resources: ResourceService
    search: SearchService
    timers: Timers
    timer_store: TimerStore
    claims: ClaimStore
    knowledge: Knowledge
    clock: Callable[[], datetime]
    channels: Any = None  # fhirhub/channels Channels (the worker's), for reminders
    enrolments: EnrolmentCache | None = None  # None: worked out afresh every time

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        try:
            return self.resources.read(resource_type, resource_id).resource
        except FhirError:
            return None

    def read_ref(self, reference: Any) -> dict[str, Any] | None:
        if not isinstance(reference, str) or reference.count("/") != 1:
            return None
        resource_type, resource_id = reference.split("/")
        return self.read(resource_type, resource_id)

    def find(self, resource_type: str, **params: str) -> list[dict[str, Any]]:
        return self.search.find_resources(resource_type, urlencode(params), MAX_READINGS)

    def enrolment(self, patient: str) -> Enrolment | None:
        if self.enrolments is None:
            return self._enrolment(patient)
        return self.enrolments.get(patient, lambda: self._enrolment(patient))

    def _enrolment(self, patient: str) -> Enrolment | None:
        plans = [
            p for p in self.find("CarePlan", subject=patient, status="active") if is_rpm_plan(p)
        ]
        organization = (self.read_ref(patient) or {}).get("managingOrganization") or {}
        org = organization.get("reference") if isinstance(organization, dict) else None
        if plans:
            plan = sorted(plans, key=lambda p: str(p.get("id")))[0]
            goals = [
                g for g in (self.read_ref(r.get("reference")) for r in plan.get("goal") or []) if g
            ]
            enrolment = from_plan(patient, plan, goals)
            enrolment.organization = org
            return enrolment
        devices = self.find("Device", patient=patient)
        if any(d.get("status", "active") == "active" for d in devices):
            return Enrolment(patient, None, organization=org)
        return None

    def points(self, patient: str, measure: str, since: datetime) -> list[Point]:
        codes = [f"{LOINC}|{c}" for c in BY_NAME[measure].codes]
        if measure in ("systolic", "diastolic"):
            codes.append(f"{LOINC}|{PANEL_BP}")
        found = self.find(
            "Observation",
            subject=patient,
            **{"combo-code": ",".join(codes), "date": "ge" + since.isoformat()},
        )
        out = []
        for observation in found:
            device = (observation.get("device") or {}).get("reference") or ""
            for reading in readings(observation):
                if reading.measure == measure and reading.usable:
                    assert reading.value is not None and reading.effective is not None
                    out.append(Point(reading.effective, reading.value, reading.observation, device))
        return out

    def team_tiers(self, patient: str) -> tuple[str | None, list[list[str]]]:
        """(first active CareTeam, members per tier in the documented role order)."""
        teams = [t for t in self.find("CareTeam", patient=patient, status="active")]
        tiers: list[list[str]] = [[] for _ in self.knowledge.tiers]
        for team in teams:
            for participant in team.get("participant") or []:
                member = (participant.get("member") or {}).get("reference")
                if not member:
                    continue
                codes = {
                    str(c.get("code", "")).lower()
                    for role in participant.get("role") or []
                    for c in role.get("coding") or []
                } | {str(role.get("text", "")).lower() for role in participant.get("role") or []}
                for index, (_, tier_codes) in enumerate(self.knowledge.tiers):
                    if codes & tier_codes and member not in tiers[index]:
                        tiers[index].append(member)
                        break
        team_ref = f"CareTeam/{teams[0]['id']}" if teams else None
        return team_ref, tiers
