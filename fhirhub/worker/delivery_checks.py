"""Delivery-time checks: may a queued delivery still go out to its subscriber?

Asked before every send (worker/delivery.py), because what was true when the event was
queued may not be now: the subscriber is read again (gone, switched off, ended, no longer
taking the type); for care-team Endpoints the membership is resolved again, so a
participant removed from the team gets nothing more, even what was queued; for a
Subscription its owner's access is rebuilt (worker/owner_access.py), so what the owner may
not read now is skipped, never sent. Answers are reused for at most the worker's
freshness interval (FreshCache) and within one drain session.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fhirhub.subscriptions.model import Subscriber, endpoint_subscriber, subscription_subscriber
from fhirhub.subscriptions.routing import CareTeamRouter, Reader
from fhirhub.worker.dispatcher import FreshCache
from fhirhub.worker.owner_access import OwnerAccess


@dataclass
class Session:
    """One drain of one subscriber's queue."""

    key: str
    subscriber: Subscriber | None = None
    loaded: bool = False
    members: dict[str, bool] = field(default_factory=dict)


class DeliveryChecks:
    def __init__(
        self,
        answers: FreshCache,
        router: CareTeamRouter,
        read: Reader,
        clock: Callable[[], datetime],
        owner_access: OwnerAccess | None = None,
    ):
        self.answers = answers
        self.router = router
        self.read = read
        self.clock = clock
        self.owner_access = owner_access

    def subscriber(self, session: Session) -> Subscriber | None:
        if not session.loaded:
            session.subscriber = self.answers.get(session.key, lambda: self._load(session.key))
            session.loaded = True
        return session.subscriber

    def skip_reason(self, delivery: dict[str, Any], session: Session) -> str:
        """Why the delivery must be skipped before its event is even loaded ('' if not)."""
        subscriber = self.subscriber(session)
        if subscriber is None:
            return f"{session.key} no longer exists"
        if not subscriber.active:
            return subscriber.reason
        if not subscriber.accepts(delivery["t"]):
            return f"{session.key} does not take {delivery['t']} notifications"
        care_team = session.key.startswith("Endpoint/")
        if care_team and not self._still_member(session, delivery.get("pat") or []):
            return f"{session.key} is no longer on an active care team of the patient"
        return ""

    def owner_refusal(self, subscriber: Subscriber, doc: dict[str, Any]) -> str:
        """Why the subscriber's owner may not be told about this committed change now."""
        if self.owner_access is None:
            return ""
        return self.owner_access.refusal(subscriber, doc)

    def _load(self, key: str) -> Subscriber | None:
        resource_type, resource_id = key.split("/", 1)
        resource = self.read(resource_type, resource_id)
        if resource is None:
            return None
        if resource_type == "Subscription":
            return subscription_subscriber(resource, self.clock())
        return endpoint_subscriber(resource)

    def _still_member(self, session: Session, patients: list[str]) -> bool:
        endpoint_id = session.key.split("/", 1)[1]
        for patient in patients:
            if patient not in session.members:

                def check(patient: str = patient) -> bool:
                    return self.router.reaches(patient, endpoint_id, self.clock())

                session.members[patient] = bool(self.answers.get((patient, endpoint_id), check))
            if session.members[patient]:
                return True
        return False
