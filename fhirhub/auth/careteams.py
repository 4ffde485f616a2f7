"""Which patients a practitioner may see: subjects of active CareTeams that include them.

Looked up per request (two indexed searches at most), so adding someone to a care team
or closing the team takes effect at once without re-issuing tokens.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from fhirhub.fhir.dates import parse_period
from fhirhub.fhir.errors import FhirError

MAX_TEAMS = 1000


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


def care_team_patients(search: Finder, fhir_user: str | None) -> list[str]:
    """Patient ids (sorted) of active CareTeams whose participant.member is the user."""
    if not fhir_user or not fhir_user.startswith(("Practitioner/", "PractitionerRole/")):
        return []
    members = ",".join(member_references(search, fhir_user))
    teams = search.find_resources("CareTeam", f"participant={members}&status=active", MAX_TEAMS)
    patients: set[str] = set()
    for team in teams:
        if _ended(team):
            continue
        reference = str((team.get("subject") or {}).get("reference", ""))
        kind, _, patient_id = reference.rpartition("/")
        if kind.endswith("Patient") and patient_id:
            patients.add(patient_id.split("/_history")[0])
    return sorted(patients)


def _ended(team: dict[str, object]) -> bool:
    period = team.get("period")
    end = period.get("end") if isinstance(period, dict) else None
    if not isinstance(end, str):
        return False
    try:
        return parse_period(end)[1] < datetime.now(UTC)
    except FhirError:
        return False
