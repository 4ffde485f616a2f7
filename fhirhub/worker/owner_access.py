"""A Subscription's notifications carry its owner's access at delivery time.

The owner (client, user, launch patient, scope) is recorded when the Subscription is
created (fhirhub/subscriptions/hooks.py); its criteria are checked against the owner's
access then. Access changes afterwards: a practitioner leaves a CareTeam, a user loses
the admin flag or is removed, a client's registered scopes narrow. So before each
delivery, rest-hook or websocket ping alike, the worker rebuilds the owner's access from
current data with the same AccessPolicy every read uses (AuthService.owner_policy) and
asks whether the owner may read the resource changed (for a delete: the version it
removed). A delivery the owner may not read is skipped, recorded in `$status` with the
reason, and never sent.

Rebuilt access is reused for at most the worker's freshness interval (FreshCache, about a
second), and dropped at once when the dispatcher in this process handles a change to a
CareTeam, role or Subscription. A Subscription without an owner (written by the operator:
CLI, imports, auth off) is not limited.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fhirhub.service.access import AccessPolicy
from fhirhub.storage.outbox import OutboxStore
from fhirhub.subscriptions.events import ChangeEvent
from fhirhub.subscriptions.model import Subscriber
from fhirhub.worker.dispatcher import FreshCache

PolicyFor = Callable[[dict[str, str]], AccessPolicy]


class OwnerAccess:
    def __init__(self, policy_for: PolicyFor, answers: FreshCache, outbox: OutboxStore):
        self.policy_for = policy_for
        self.answers = answers
        self.outbox = outbox

    def refusal(self, subscriber: Subscriber, doc: dict[str, Any]) -> str:
        """Why the subscriber's owner may not be told about this committed change now
        ('' when it may, or when the subscriber has no owner)."""
        owner = subscriber.owner
        if not owner:
            return ""
        previous = self.outbox.previous_resource(doc) if doc.get("del") else None
        event = ChangeEvent.from_history(doc, previous)
        resource = event.resource
        if resource is None:
            return "the changed resource cannot be judged (no live version); not sent"
        policy = self.answers.get(("owner", owner), lambda: self.policy_for(dict(owner)))
        if policy.allows("r", event.resource_type, resource):
            return ""
        return (
            f"the Subscription's owner may not read {event.reference} now (access is "
            "checked at delivery time); not sent"
        )
