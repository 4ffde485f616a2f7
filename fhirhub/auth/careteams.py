"""Which patients a practitioner may see, and whose care they may manage: subjects of
active CareTeams that include them (as a manager, for the second).

Looked up per request (two indexed searches at most), so adding someone to a care team
or closing the team takes effect at once without re-issuing tokens.

Managing a patient's care means being a current participant of one of the patient's
active CareTeams with the role MANAGER (participant.role coding
https://fhirhub.example/fhir/CodeSystem/care-team-role|manager): such a member may create,
change and end the patient's CareTeams, and so decide who else sees the patient. Everyone
else on a team reads and writes the patient's record but cannot widen who does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from fhirhub.fhir.dates import parse_period
from fhirhub.fhir.errors import FhirError
from fhirhub.service.access_grants import patient_id

MAX_TEAMS = 1000
ROLE_SYSTEM = "https://fhirhub.example/fhir/CodeSystem/care-team-role"
MANAGER = "manager"


class Finder(Protocol):
    def find_resources(
        self, resource_type: str, query_string: str, limit: int = 1000
    ) -> list[dict[str, Any]]: ...


def member_references(search: Finder, fhir_user: str) -> list[str]:
    """The user's own reference plus, for a Practitioner, the PractitionerRoles they fill."""
    refs = [fhir_user]
    if fhir_user.startswith("Practitioner/"):
        roles = search.find_resources("PractitionerRole", f"practitioner={fhir_user}", MAX_TEAMS)
        refs += [f"PractitionerRole/{r['id']}" for r in roles if r.get("active", True)]
    return refs


def _teams(search: Finder, fhir_user: str | None) -> tuple[list[str], list[dict[str, Any]]]:
    if not fhir_user or not fhir_user.startswith(("Practitioner/", "PractitionerRole/")):
        return [], []
    members = member_references(search, fhir_user)
    query = f"participant={','.join(members)}&status=active"
    teams = search.find_resources("CareTeam", query, MAX_TEAMS)
    return members, [t for t in teams if not _ended(t.get("period"))]


def care_team_patients(search: Finder, fhir_user: str | None) -> list[str]:
    """Patient ids (sorted) of active CareTeams whose participant.member is the user."""
    _, teams = _teams(search, fhir_user)
    patients = {p for team in teams if (p := patient_id(_subject(team)))}
    return sorted(patients)


def managed_patients(search: Finder, fhir_user: str | None) -> list[str]:
    """Patient ids (sorted) of active CareTeams on which the user (or one of their roles) is
    a current participant with the manager role."""
    members, teams = _teams(search, fhir_user)
    patients: set[str] = set()
    for team in teams:
        subject = patient_id(_subject(team))
        if subject and any(_manages(p, members) for p in team.get("participant") or []):
            patients.add(subject)
    return sorted(patients)


def is_manager(participant: Any) -> bool:
    if not isinstance(participant, dict):
        return False
    return any(
        isinstance(coding, dict)
        and coding.get("system") == ROLE_SYSTEM
        and coding.get("code") == MANAGER
        for concept in participant.get("role") or []
        if isinstance(concept, dict)
        for coding in concept.get("coding") or []
    )


def _manages(participant: Any, members: list[str]) -> bool:
    if not is_manager(participant) or _ended(participant.get("period"), starts=True):
        return False
    member = str((participant.get("member") or {}).get("reference", ""))
    return member.split("/_history")[0] in members


def _subject(team: dict[str, Any]) -> Any:
    return (team.get("subject") or {}).get("reference")


def _ended(period: Any, starts: bool = False) -> bool:
    """Has the period ended (or, with `starts`, not begun yet)? Unparseable: no."""
    if not isinstance(period, dict):
        return False
    now = datetime.now(UTC)
    try:
        end = period.get("end")
        if isinstance(end, str) and parse_period(end)[1] < now:
            return True
        start = period.get("start")
        return starts and isinstance(start, str) and parse_period(start)[0] > now
    except FhirError:
        return False
