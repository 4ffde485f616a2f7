"""Who reads a message beyond the patient's compartment (a ShareSource): its sender and
its recipients, a CareTeam recipient's current members included, whether or not the
message is about a patient of theirs. A practitioner also writes messages about no patient
(to colleagues); about a patient, only within the patient's compartment as usual. The
patient's care team reads messages about the patient through the compartment already; a
patient's own token sees only messages they send or receive (`PATIENT_FACING`), not what
the team discusses about them."""

from __future__ import annotations

from fhirhub.auth.careteams import _ended  # the same reading of periods care teams get
from fhirhub.coordination.messaging.guard import own_references
from fhirhub.coordination.referrals.access import Finder
from fhirhub.coordination.referrals.rules import reference
from fhirhub.service.access import Principal
from fhirhub.service.access_shares import ShareRule

PATIENT_FACING = {"Communication": ("sender", "recipient")}
MAX = 1000


def current_teams(search: Finder, own: list[str]) -> list[str]:
    """Active CareTeams on which one of `own` is a current participant."""
    if not own:
        return []
    teams = search.find_resources("CareTeam", f"participant={','.join(own)}&status=active", MAX)
    found = []
    for team in teams:
        if _ended(team.get("period")):
            continue
        for participant in team.get("participant") or []:
            member = reference(participant.get("member"))
            if member in own and not _ended(participant.get("period"), starts=True):
                found.append(f"CareTeam/{team['id']}")
                break
    return sorted(set(found))


class MessageShares:
    def __init__(self, search: Finder):
        self.search = search

    def __call__(self, principal: Principal) -> list[ShareRule]:
        if str(principal.fhir_user or "").startswith("Patient/"):
            return []  # the patient's compartment covers their own messages
        own = own_references(self.search, principal)
        if not own:
            return []
        addressed = own + current_teams(self.search, own)
        read = frozenset("rs")
        senders = ",".join(own)
        return [
            ShareRule("Communication", read, "", "recipient=" + ",".join(addressed)),
            ShareRule("Communication", read, "", f"sender={senders}"),
            # messages about no patient (colleague to colleague); the guard checks the rest
            ShareRule(
                "Communication", frozenset("cu"), "", f"sender={senders}&subject:missing=true"
            ),
        ]
