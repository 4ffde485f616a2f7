"""CommunicationRequest: "please contact the patient".

The requester (the token's own person) asks a `sender` (a member of the patient's care
team, or the specialist of an open referral) to get in touch with the `recipient` (the
patient or their RelatedPerson) about `subject`. The sender is told that a request waits
(notices.py) and finds it with `CommunicationRequest?sender=...&status=active`; the
Communication they then record with `basedOn` the request completes it (a reaction).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fhirhub.coordination.messaging import rules
from fhirhub.coordination.messaging.guard import CommunicationGuard, own_references
from fhirhub.coordination.referrals.rules import reference
from fhirhub.fhir.errors import Forbidden, Unprocessable
from fhirhub.service import access
from fhirhub.service.write_guards import NO_TICKET, Ticket
from fhirhub.storage.documents import StoredVersion
from fhirhub.subscriptions.events import ChangeEvent

Resource = dict[str, Any]


class CommunicationRequestGuard:
    def __init__(self, messages: CommunicationGuard):
        self.messages = messages

    def before(
        self,
        resource_type: str,
        resource_id: str,
        new: Resource | None,
        current: StoredVersion | None,
    ) -> Ticket:
        if new is None:
            return NO_TICKET
        policy = access.active()
        if policy is not None and not policy.unrestricted():
            with access.unrestricted():
                own = own_references(self.messages.search, policy.principal())
            if reference(new.get("requester")) not in own:
                raise Forbidden("CommunicationRequest.requester must be the token's own person")
        # the people involved are checked as a message's recipients would be
        as_message = {
            "subject": new.get("subject"),
            "recipient": list(new.get("recipient") or [])
            + ([new["sender"]] if new.get("sender") else []),
        }
        problems = (
            []
            if new.get("sender")
            else ["a CommunicationRequest needs a sender (who is to get in touch)"]
        )
        problems += rules.recipient_problems(as_message)
        if not problems:
            problems += self.messages.recipients(as_message)
        if problems:
            raise Unprocessable("; ".join(problems), code="business-rule")
        return NO_TICKET


def fulfilment(
    read: Callable[[str, str], Resource | None], write: Callable[[Resource], None]
) -> Callable[[ChangeEvent], str]:
    """A Communication basedOn an active CommunicationRequest, sent by the request's
    sender, completes the request."""

    def handle(event: ChangeEvent) -> str:
        message = event.resource
        if event.operation != "create" or message is None or rules.is_channel_record(message):
            return "not a new message"
        done = []
        for item in message.get("basedOn") or []:
            ref = reference(item) or ""
            if not ref.startswith("CommunicationRequest/"):
                continue
            request = read("CommunicationRequest", ref.split("/")[1])
            if request is None or request.get("status") != "active":
                continue
            if reference(request.get("sender")) != reference(message.get("sender")):
                continue
            write({**request, "status": "completed"})
            done.append(ref)
        return "completed " + ", ".join(done) if done else "no open request"

    return handle
