"""What a referral shares with the specialist, looked up per token (a ShareSource).

- A referral Task owned by the principal (their Practitioner or one of their roles) that
  has not ended: the Task may be read and updated (to receive, accept, reject, start,
  complete it) and its ServiceRequest read.
- An open Task (accepted, in progress) owned by the principal themself, with its active
  referral-access Consent naming them as actor: the Consent's provision
  (referrals/consent.py), plus what the Task already lists as output.
Up to three indexed searches per practitioner token (roles, Tasks, Consents); the third
only when they own an open referral.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from fhirhub.coordination.referrals.consent import (
    CATEGORY_SYSTEM,
    REFERRAL_ACCESS,
    consent_task,
    shares,
)
from fhirhub.coordination.referrals.rules import (
    ENDED,
    FULFILL,
    OPEN,
    TASK_CODES,
    TRANSITIONS,
    is_referral_task,
    reference,
)
from fhirhub.fhir.dates import parse_period
from fhirhub.fhir.errors import FhirError
from fhirhub.service.access import Principal
from fhirhub.service.access_grants import patient_id
from fhirhub.service.access_shares import ShareRule

MAX = 1000
LIVE = ",".join(sorted(set(TRANSITIONS) - {"draft"} - ENDED))


class Finder(Protocol):
    def find_resources(
        self, resource_type: str, query_string: str, limit: int = 1000
    ) -> list[dict[str, Any]]: ...


def principal_references(search: Finder, fhir_user: str) -> list[str]:
    """The principal's own references: their Practitioner and active roles."""
    if fhir_user.startswith("Practitioner/"):
        roles = search.find_resources("PractitionerRole", f"practitioner={fhir_user}", MAX)
    elif fhir_user.startswith("PractitionerRole/"):
        roles = search.find_resources("PractitionerRole", f"_id={fhir_user.split('/')[1]}", MAX)
    else:
        return []
    own = [fhir_user] + [f"PractitionerRole/{r['id']}" for r in roles if r.get("active", True)]
    return sorted(set(own))


class ReferralShares:
    def __init__(self, search: Finder):
        self.search = search

    def __call__(self, principal: Principal) -> list[ShareRule]:
        own = principal_references(self.search, str(principal.fhir_user or ""))
        if not own:
            return []
        tasks = self.search.find_resources(
            "Task", f"owner={','.join(own)}&code={TASK_CODES}|{FULFILL}&status={LIVE}", MAX
        )
        rules: list[ShareRule] = []
        open_tasks: dict[str, tuple[dict[str, Any], str]] = {}
        for task in tasks:
            patient = patient_id(reference(task.get("for")))
            if not is_referral_task(task) or patient is None:
                continue
            focus = str(reference(task.get("focus"))).split("/")[1]
            rules.append(ShareRule("Task", frozenset("rsu"), patient, f"_id={task['id']}"))
            rules.append(ShareRule("ServiceRequest", frozenset("rs"), patient, f"_id={focus}"))
            if task.get("status") in OPEN:
                open_tasks[f"Task/{task['id']}"] = (task, patient)
                rules += _outputs(task, patient)
        if not open_tasks:
            return rules
        consents = self.search.find_resources(
            "Consent",
            f"actor={','.join(own)}&status=active&category={CATEGORY_SYSTEM}|{REFERRAL_ACCESS}",
            MAX,
        )
        for consent in consents:
            found = open_tasks.get(consent_task(consent) or "")
            if found is None or not _honoured(consent, *found):
                continue
            rules += shares(consent)
        return rules


def _outputs(task: dict[str, Any], patient: str) -> list[ShareRule]:
    by_type: dict[str, list[str]] = {}
    for output in task.get("output") or []:
        kind, _, rid = str(reference(output.get("valueReference")) or "").partition("/")
        if rid:
            by_type.setdefault(kind, []).append(rid)
    return [
        ShareRule(kind, frozenset("rs"), patient, "_id=" + ",".join(ids))
        for kind, ids in by_type.items()
    ]


def _honoured(consent: dict[str, Any], task: dict[str, Any], patient: str) -> bool:
    """The Consent is about the Task's patient, its actor owns the Task, and its period has
    not ended."""
    if patient_id(reference(consent.get("patient"))) != patient:
        return False
    provision = consent.get("provision") or {}
    actors = {reference(a.get("reference")) for a in provision.get("actor") or []}
    if reference(task.get("owner")) not in actors:
        return False
    end = (provision.get("period") or {}).get("end")
    try:
        return not (isinstance(end, str) and parse_period(end)[1] <= datetime.now(UTC))
    except FhirError:
        return False
