"""Messaging operations: `Communication/[id]/$mark-read` and `Communication/$inbox`.

$mark-read records that the caller (a recipient, or a current member of a CareTeam
recipient) has read the message: the read-status extension for their own reference, and
`received` if it was unset. Only the server writes these, so nobody marks for another.

$inbox answers, for the caller's own inbox (or, with `recipient`, an inbox an unrestricted
token names), the messages addressed to them or their current care teams (not their own
messages to a team they are on), optionally about one `patient`: a Parameters with
`total`, `unread` and per `thread` its reference, message count and unread count. It
reads through the request's access policy, so it counts only messages the token may read.
The messages themselves are plain searches: `Communication?recipient=...` (inbox) and
`Communication?sender=...` (outbox).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from fhirhub.coordination.messaging import rules
from fhirhub.coordination.messaging.access import current_teams
from fhirhub.coordination.messaging.guard import own_references
from fhirhub.coordination.referrals.access import Finder
from fhirhub.coordination.referrals.rules import reference
from fhirhub.fhir.errors import BadRequest, Forbidden, NotFound
from fhirhub.operations.model import AccessRule, Call, Operation, Parameter, Result
from fhirhub.service import access

Resource = dict[str, Any]
MAX = 1000


class Messaging:
    def __init__(
        self,
        read: Callable[[str, str], Resource | None],
        search: Finder,
        write: Callable[[Resource], None],
        clock: Callable[[], datetime],
    ):
        self.read = read
        self.search = search
        self.write = write
        self.clock = clock

    def _own(self) -> list[str]:
        policy = access.active()
        if policy is None:
            return []
        with access.unrestricted():
            return own_references(self.search, policy.principal())

    def mark_read(self, call: Call) -> Result:
        message_id = str(call.resource_id)
        message = self.read("Communication", message_id)
        # through the policy: a message the token may not read is not known to it
        if message is None or not self.search.find_resources(
            "Communication", f"_id={message_id}", 1
        ):
            raise NotFound(f"Communication/{message_id} is not known")
        own = self._own()
        addressed = set(rules.recipients(message))
        with access.unrestricted():
            teams = set(current_teams(self.search, own))
        mine = [r for r in own if r in addressed] or (own[:1] if addressed & teams else [])
        if not mine:
            raise Forbidden("only a recipient of the message (or their care team) marks it read")
        updated = rules.marked_read(message, mine[0], self.clock())
        if updated is not None:
            with access.unrestricted():
                self.write(updated)
            message = self.read("Communication", message_id) or updated
        return Result(message)

    def inbox(self, call: Call) -> Result:
        own = self._own()
        wanted = call.one("recipient")
        policy = access.active()
        if wanted is not None:
            target = str(wanted.get("reference") if isinstance(wanted, dict) else wanted)
            if policy is not None and not policy.unrestricted() and target not in own:
                raise Forbidden("an inbox other than one's own needs unrestricted access")
            own = [target]
        if not own:
            raise BadRequest("name the inbox: `recipient` (the token has no person of its own)")
        with access.unrestricted():
            addressed = own + current_teams(self.search, own)
        query = "recipient=" + ",".join(addressed) + "&_sort=-sent"
        patient = call.one("patient")
        if patient is not None:
            query += (
                f"&subject={patient.get('reference') if isinstance(patient, dict) else patient}"
            )
        messages = [
            m
            for m in self.search.find_resources("Communication", query, MAX)
            if not rules.is_channel_record(m) and reference(m.get("sender")) not in own
        ]
        threads: dict[str, list[int]] = {}
        unread = 0
        for message in messages:
            seen = set(rules.read_status(message))
            is_unread = not (seen & set(own))
            unread += is_unread
            counts = threads.setdefault(rules.thread_of(message), [0, 0])
            counts[0] += 1
            counts[1] += is_unread
        parameters = [
            {"name": "total", "valueInteger": len(messages)},
            {"name": "unread", "valueInteger": unread},
        ] + [
            {
                "name": "thread",
                "part": [
                    {"name": "thread", "valueReference": {"reference": ref}},
                    {"name": "messages", "valueInteger": counts[0]},
                    {"name": "unread", "valueInteger": counts[1]},
                ],
            }
            for ref, counts in threads.items()
        ]
        return Result({"resourceType": "Parameters", "parameter": parameters})


def declarations(messaging: Messaging) -> list[Operation]:
    read = AccessRule(types=("Communication",), actions="rs")
    return [
        Operation(
            code="mark-read",
            id="Communication-mark-read",
            title="Mark a secure message read",
            description="Records that the caller, a recipient, has read the message "
            "(extension communication-read-status; `received` if unset).",
            handler=messaging.mark_read,
            resource=("Communication",),
            levels=("instance",),
            parameters=(Parameter("return", "Communication", 1, "1", use="out"),),
            affects_state=True,
            access=read,
        ),
        Operation(
            code="inbox",
            id="Communication-inbox",
            title="Secure-message inbox counts",
            description="Messages addressed to the caller or their current care teams: "
            "total, unread, and per thread.",
            handler=messaging.inbox,
            resource=("Communication",),
            parameters=(
                Parameter("recipient", "Reference", documentation="default: the caller"),
                Parameter("patient", "Reference", documentation="only messages about them"),
                Parameter("return", "Parameters", 1, "1", use="out"),
            ),
            access=read,
        ),
    ]
