"""Write guards for referrals: the Task state machine on every write path, and the Consent
that follows the Task (written once the Task write is durable).

Illegal transitions and inconsistent referrals are refused before anything is written
(422). Under a token, only the Task's owner moves it forward (receive, accept, start,
complete, reject); the requesting side may cancel. Once the Task is durable, its Consent is
written (accepted: active; ended: inactive); if that fails, the reaction on the Task event
(referrals/reactions.py) writes it, and until then the policy's own check of the Task's
status already grants or ends the access.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhirhub.coordination.referrals.access import Finder, principal_references
from fhirhub.coordination.referrals.consent import (
    consent_id,
    empty_provision,
    referral_consent,
)
from fhirhub.coordination.referrals.rules import (
    ENDED,
    OPEN,
    is_referral_request,
    is_referral_task,
    owner_move,
    reference,
    transition_problems,
)
from fhirhub.fhir.errors import Forbidden, Unprocessable
from fhirhub.service import access
from fhirhub.service.write_guards import NO_TICKET, Ticket
from fhirhub.storage.documents import StoredVersion, live_resource

log = logging.getLogger(__name__)
Resource = dict[str, Any]
Read = Callable[[str, str], "Resource | None"]
Write = Callable[[Resource], None]


def desired_consent(
    task: Resource, request: Resource | None, existing: Resource | None, now: datetime
) -> Resource | None:
    """The Consent version the Task's state calls for; None when the stored one is right."""
    status = task.get("status")
    if status in OPEN and request is not None:
        want = "active"
    elif status in ENDED and existing is not None:
        want = "inactive"
    else:
        return None
    if existing is not None and existing.get("status") == want:
        return None
    started = ((existing or {}).get("provision") or {}).get("period", {}).get("start")
    return referral_consent(task, request or {"id": "-"}, now, want, started)


@dataclass
class ConsentSync:
    read: Read
    write: Write
    clock: Callable[[], datetime]

    def __call__(self, task: Resource) -> str:
        focus = str(reference(task.get("focus")))
        request = self.read("ServiceRequest", focus.split("/")[-1])
        existing = self.read("Consent", consent_id(str(task["id"])))
        consent = desired_consent(task, request, existing, self.clock())
        if consent is None:
            return "consent up to date"
        with access.unrestricted():
            self.write(consent)
        return f"consent {consent['status']}"


@dataclass
class ConsentTicket:
    sync: ConsentSync
    task: Resource

    def commit(self) -> None:
        try:
            self.sync(self.task)
        except Exception:  # the reaction on the Task event writes it (why: see module)
            log.exception("referral consent for Task/%s left to the worker", self.task.get("id"))

    def abort(self) -> None:
        return None


class ReferralTaskGuard:
    def __init__(self, read: Read, search: Finder, sync: ConsentSync):
        self.read = read
        self.search = search
        self.sync = sync

    def before(
        self,
        resource_type: str,
        resource_id: str,
        new: Resource | None,
        current: StoredVersion | None,
    ) -> Ticket:
        old = live_resource(current)
        if not is_referral_task(new) and not is_referral_task(old):
            return NO_TICKET
        if new is None:
            if old is not None and old.get("status") != "draft":
                raise Unprocessable(
                    "a referral Task that was requested is not deleted: cancel it (status "
                    "cancelled with a statusReason) or mark it entered-in-error",
                    code="business-rule",
                )
            return NO_TICKET
        if old is not None and not is_referral_task(new):
            raise Unprocessable("a referral Task cannot stop being one", code="business-rule")
        problems = transition_problems(old, new)
        problems += self._request_problems(new)
        if problems:
            raise Unprocessable("; ".join(problems), code="business-rule")
        self._check_side(old, new)
        return ConsentTicket(self.sync, {**new, "id": resource_id})

    def _request_problems(self, task: Resource) -> list[str]:
        focus = str(reference(task.get("focus")))
        request = self.read("ServiceRequest", focus.split("/")[-1])
        if request is None:
            return [f"the referral's {focus} does not exist"]
        problems = []
        if not is_referral_request(request):
            problems.append(f"{focus} is not a referral (category SNOMED CT 3457005)")
        if reference(request.get("subject")) != reference(task.get("for")):
            problems.append("Task.for must be the referral ServiceRequest's subject")
        owner = reference(task.get("owner")) or ""
        if task.get("status") != "draft" and not owner.startswith(
            ("Practitioner/", "PractitionerRole/")
        ):
            problems.append("a requested referral Task needs an owner: the specialist")
        return problems

    def _check_side(self, old: Resource | None, new: Resource) -> None:
        policy = access.active()
        if policy is None or old is None or not owner_move(old, new):
            return
        if policy.unrestricted():
            return
        with access.unrestricted():
            own = principal_references(self.search, str(policy.principal().fhir_user or ""))
        if reference(old.get("owner")) not in own:
            raise Forbidden(
                f"only the referral's owner ({reference(old.get('owner'))}) may move its Task "
                f"to {new.get('status')}; the requesting side may cancel it"
            )


class ConsentGuard:
    """Consents with an empty provision are refused (they would mean nothing)."""

    def before(
        self,
        resource_type: str,
        resource_id: str,
        new: Resource | None,
        current: StoredVersion | None,
    ) -> Ticket:
        problem = empty_provision(new) if new is not None else None
        if problem:
            raise Unprocessable(problem, code="business-rule")
        return NO_TICKET
