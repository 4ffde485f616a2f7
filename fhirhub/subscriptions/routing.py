"""Care-team routing: which Endpoints hear about changes in a patient's compartment.

A patient's active CareTeams are found with the search engine; each participant whose
period covers now is resolved to Endpoints: PractitionerRole.endpoint, Organization.endpoint,
or for a Practitioner the endpoints of their active PractitionerRoles. Only Endpoints that
are active, of a notification connection type and not opted out are routes. The same
resolution runs at fan-out and again at delivery time (membership may have changed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from fhirhub.subscriptions.model import Subscriber, endpoint_subscriber, period_active


class NotificationSearch(Protocol):
    """The SearchApi calls used here (service/search_api.py), restated because the
    implementation returns the parsed query from validate_criteria where the contract
    says None; notifications only rely on it raising."""

    def find_resources(
        self, resource_type: str, query_string: str, limit: int = 1000
    ) -> list[dict[str, Any]]: ...

    def matches(self, criteria: str, resource: dict[str, Any]) -> bool: ...

    def validate_criteria(self, criteria: str) -> object: ...

    def compartment_owners(self, resource: dict[str, Any], compartment: str) -> list[str]: ...


# (type, id) -> current resource, or None when absent or deleted
Reader = Callable[[str, str], dict[str, Any] | None]
MAX_TEAMS = 100


@dataclass
class Route:
    subscriber: Subscriber
    care_teams: list[str] = field(default_factory=list)


def local_reference(reference: Any, base: str) -> tuple[str, str] | None:
    if not isinstance(reference, str):
        return None
    if base and reference.startswith(base + "/"):
        reference = reference[len(base) + 1 :]
    parts = reference.split("/")
    if len(parts) != 2 or not parts[0][:1].isupper() or not parts[1]:
        return None
    return parts[0], parts[1]


def references(resource: dict[str, Any], element: str, base: str) -> list[tuple[str, str]]:
    found = []
    for item in resource.get(element) or []:
        ref = local_reference(item.get("reference") if isinstance(item, dict) else None, base)
        if ref:
            found.append(ref)
    return found


class CareTeamRouter:
    def __init__(self, search: NotificationSearch, read: Reader, base: str):
        self.search = search
        self.read = read
        self.base = base

    def routes(self, patient: str, now: datetime) -> dict[str, Route]:
        """Subscriber key ("Endpoint/id") -> route, for one patient reference."""
        found: dict[str, Route] = {}
        for team_ref, member in self._members(patient, now):
            for endpoint_id in self._endpoints_of(member, now):
                key = f"Endpoint/{endpoint_id}"
                if key not in found:
                    endpoint = self.read("Endpoint", endpoint_id)
                    subscriber = endpoint_subscriber(endpoint) if endpoint else None
                    if subscriber is None or not subscriber.active:
                        continue
                    found[key] = Route(subscriber)
                if team_ref not in found[key].care_teams:
                    found[key].care_teams.append(team_ref)
        return found

    def reaches(self, patient: str, endpoint_id: str, now: datetime) -> bool:
        """Is the Endpoint still reached through an active care team of the patient? (The
        delivery-time check: stops at the first path found, reads no Endpoints.)"""
        return any(
            endpoint_id in self._endpoints_of(member, now)
            for _, member in self._members(patient, now)
        )

    def _members(self, patient: str, now: datetime) -> Iterator[tuple[str, tuple[str, str]]]:
        """(CareTeam reference, member) for each current participant of an active team."""
        teams = self.search.find_resources(
            "CareTeam", f"patient={patient}&status=active", MAX_TEAMS
        )
        for team in teams:
            if team.get("status") != "active" or not period_active(team.get("period"), now):
                continue
            for participant in team.get("participant") or []:
                if not isinstance(participant, dict):
                    continue
                if not period_active(participant.get("period"), now):
                    continue
                ref = (participant.get("member") or {}).get("reference")
                member = local_reference(ref, self.base)
                if member is not None:
                    yield f"CareTeam/{team.get('id')}", member

    def _endpoints_of(self, member: tuple[str, str], now: datetime) -> list[str]:
        member_type, member_id = member
        if member_type in ("PractitionerRole", "Organization"):
            holder = self.read(member_type, member_id)
            if holder is None or not self._live(holder, now):
                return []
            return [i for t, i in references(holder, "endpoint", self.base) if t == "Endpoint"]
        if member_type == "Practitioner":
            roles = self.search.find_resources(
                "PractitionerRole", f"practitioner=Practitioner/{member_id}&active=true", MAX_TEAMS
            )
            return [
                i
                for role in roles
                if self._live(role, now)
                for t, i in references(role, "endpoint", self.base)
                if t == "Endpoint"
            ]
        return []

    @staticmethod
    def _live(resource: dict[str, Any], now: datetime) -> bool:
        return resource.get("active") is not False and period_active(resource.get("period"), now)
