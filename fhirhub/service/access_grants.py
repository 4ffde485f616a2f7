"""Access-granting resource types: writes that open a patient's data to other people (pure).

A CareTeam gives its participants (and, through PractitionerRoles and Organizations, their
Endpoints) the team's subject: whoever may write one decides who later reads that patient.
Such a write is therefore authorised by the access to the *subject* it opens, not by the
compartments the resource also lies in (a participant Patient/A puts a team for patient B
in A's compartment too). Each type says, for one version of a resource:

- `subjects`: the patient ids whose data it opens up;
- `grantees`: what it grants, as comparable items, so the policy can tell a write that
  only takes access away (every item of the new version was already in the old one) from
  one that widens it.

The policy (fhirhub/auth/policy.py) decides who may widen: an unrestricted token, or
someone who already manages the subject's care. Consent, referral Tasks and the like join
by registering an AccessGrant here (`GrantRegistry.register`) from the composition root.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

Resource = dict[str, Any]


def patient_id(reference: Any) -> str | None:
    """The patient id a reference names ("Patient/b", ".../fhir/Patient/b/_history/2"), or
    None. The same reading the care-team lookup uses (fhirhub/auth/careteams.py), so what is
    checked here is what later grants access."""
    if not isinstance(reference, str):
        return None
    path = reference.split("/_history")[0]
    kind, _, rid = path.rpartition("/")
    if kind.endswith("Patient") and rid and (kind == "Patient" or kind.endswith("/Patient")):
        return rid
    return None


def _canonical(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def care_team_subjects(team: Resource) -> list[str]:
    found = patient_id((team.get("subject") or {}).get("reference"))
    return [found] if found else []


def care_team_grantees(team: Resource) -> frozenset[str]:
    """Each participant (member, role, period, onBehalfOf) of an active team, together with
    the team's own period: changing any of them, or re-activating the team, widens access."""
    if team.get("status") != "active":
        return frozenset()
    subjects = {f"Patient/{p}" for p in care_team_subjects(team)}
    period = _canonical(team.get("period"))
    items = set()
    for participant in team.get("participant") or []:
        if not isinstance(participant, dict):
            continue
        member = (participant.get("member") or {}).get("reference")
        if isinstance(member, str) and member.split("/_history")[0] in subjects:
            continue  # the patient on their own team gains nothing
        items.add(f"{_canonical(participant)}|{period}")
    return frozenset(items)


@dataclass(frozen=True)
class AccessGrant:
    resource_type: str
    subjects: Callable[[Resource], list[str]]
    grantees: Callable[[Resource], frozenset[str]]
    # A write that widens nothing is open to whoever may write the resource otherwise (a
    # referral Task: its owner moves it through the workflow without managing the patient).
    keep_open: bool = False

    def widens(self, old: Resource | None, new: Resource | None) -> bool:
        """Does replacing `old` with `new` (None: absent/deleted) open anything new?"""
        before = self.grantees(old) if old is not None else frozenset()
        after = self.grantees(new) if new is not None else frozenset()
        if not after <= before:
            return True
        if old is not None and new is not None:
            return set(self.subjects(old)) != set(self.subjects(new))
        return False


@dataclass
class GrantRegistry:
    grants: dict[str, AccessGrant] = field(default_factory=dict)

    def register(self, grant: AccessGrant) -> None:
        self.grants[grant.resource_type] = grant

    def get(self, resource_type: str) -> AccessGrant | None:
        return self.grants.get(resource_type)

    def types(self) -> Iterable[str]:
        return self.grants.keys()


def default_registry() -> GrantRegistry:
    registry = GrantRegistry()
    registry.register(AccessGrant("CareTeam", care_team_subjects, care_team_grantees))
    return registry
