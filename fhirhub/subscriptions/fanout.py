"""Fan-out: which subscribers an event goes to (Subscriptions by criteria, care teams).

Runs only in the dispatcher, which handles events one at a time in commit order, so its
caches stay exact by dropping them whenever it handles an event that could change them
(a Subscription, or a CareTeam/role/organization/endpoint); the TTL only bounds staleness
for changes that bypass the outbox.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fhirhub.fhir.errors import FhirError
from fhirhub.subscriptions.events import ChangeEvent
from fhirhub.subscriptions.model import Subscriber, ended, subscription_subscriber
from fhirhub.subscriptions.routing import CareTeamRouter, NotificationSearch, Route

log = logging.getLogger(__name__)

ROUTING_TYPES = frozenset(
    {"CareTeam", "PractitionerRole", "Practitioner", "Organization", "Endpoint"}
)
CACHE_TTL = timedelta(seconds=60)
MAX_SUBSCRIPTIONS = 10_000


@dataclass(frozen=True)
class Target:
    subscriber: str
    patients: tuple[str, ...] = ()
    care_teams: tuple[str, ...] = ()


@dataclass(frozen=True)
class ActiveSubscription:
    resource: dict[str, Any]
    subscriber: Subscriber
    criteria: str

    @property
    def resource_type(self) -> str:
        return self.criteria.split("?", 1)[0]


class FanOut:
    def __init__(
        self, search: NotificationSearch, router: CareTeamRouter, clock: Callable[[], datetime]
    ):
        self.search = search
        self.router = router
        self.clock = clock
        self._subscriptions: list[ActiveSubscription] | None = None
        self._routes: dict[str, dict[str, Route]] = {}
        self._loaded = clock()

    def reset(self) -> None:
        self._subscriptions = None
        self._routes = {}
        self._loaded = self.clock()

    def subscriptions(self) -> list[ActiveSubscription]:
        if self._subscriptions is None:
            found = self.search.find_resources("Subscription", "status=active", MAX_SUBSCRIPTIONS)
            self._subscriptions = [
                ActiveSubscription(r, subscription_subscriber(r, self.clock()), str(r["criteria"]))
                for r in found
                if isinstance(r.get("criteria"), str)
            ]
        return self._subscriptions

    def expired_subscriptions(self) -> list[dict[str, Any]]:
        """Active Subscriptions whose end has passed (the dispatcher turns them off)."""
        now = self.clock()
        return [s.resource for s in self.subscriptions() if ended(s.resource.get("end"), now)]

    def warm(self, events: list[ChangeEvent], map_: Callable[..., Any]) -> None:
        """Work out, concurrently through `map_` (a thread pool's map), the routes of the
        patients that the events up to the first routing change will need: one round of
        lookups for a batch instead of one per patient in turn. Routes are only ever
        looked up for the state before that change, so the cache stays exact."""
        now = self.clock()
        if now - self._loaded > CACHE_TTL:
            self.reset()
        needed: list[str] = []
        for event in events:
            if event.resource_type in ROUTING_TYPES or event.resource_type == "Subscription":
                break
            if event.resource is None:
                continue
            needed += [p for p in self.patients(event) if p not in self._routes]
        needed = list(dict.fromkeys(needed))
        if len(needed) < 2:
            return
        for patient, routes in zip(
            needed, map_(lambda p: self.router.routes(p, now), needed), strict=True
        ):
            self._routes[patient] = routes

    def targets(self, event: ChangeEvent) -> list[Target]:
        now = self.clock()
        if now - self._loaded > CACHE_TTL:
            self.reset()
        if event.resource_type == "Subscription":
            self._subscriptions = None
        if event.resource_type in ROUTING_TYPES:
            self._routes = {}
        if event.resource is None:
            return []
        return self._subscription_targets(event, now) + self._care_team_targets(event, now)

    def _subscription_targets(self, event: ChangeEvent, now: datetime) -> list[Target]:
        found = []
        patients: tuple[str, ...] | None = None  # recorded so $status can hide them
        for sub in self.subscriptions():
            if sub.resource_type != event.resource_type or not sub.subscriber.active:
                continue
            if ended(sub.resource.get("end"), now):
                continue
            try:
                if self.search.matches(sub.criteria, event.resource or {}):
                    if patients is None:
                        patients = tuple(self.patients(event))
                    found.append(Target(sub.subscriber.key, patients))
            except FhirError as error:
                log.warning("%s: criteria no longer usable: %s", sub.subscriber.key, error)
        return found

    def patients(self, event: ChangeEvent) -> list[str]:
        resource = event.resource or {}
        owners = list(self.search.compartment_owners(resource, "Patient"))
        if event.resource_type == "Patient" and event.reference not in owners:
            owners.insert(0, event.reference)
        if event.resource_type == "Task" and not owners:
            # Task is not in R4's Patient compartment; a Task for a patient (an alert's
            # review task) still reaches that patient's care team.
            subject = (resource.get("for") or {}).get("reference")
            if isinstance(subject, str) and subject.startswith("Patient/"):
                owners.append(subject)
        return owners

    def _care_team_targets(self, event: ChangeEvent, now: datetime) -> list[Target]:
        merged: dict[str, tuple[list[str], list[str]]] = {}
        for patient in self.patients(event):
            if patient not in self._routes:
                self._routes[patient] = self.router.routes(patient, now)
            for key, route in self._routes[patient].items():
                if not route.subscriber.accepts(event.resource_type):
                    continue
                patients, teams = merged.setdefault(key, ([], []))
                patients.append(patient)
                teams.extend(t for t in route.care_teams if t not in teams)
        return [Target(k, tuple(p), tuple(t)) for k, (p, t) in merged.items()]
