"""What a dead letter leaves behind: an AuditEvent, and (unless only that one event was
refused: a poison event, worker/retries.py) the subscriber switched to error.

R4 has Subscription.status `error` with Subscription.error for this; Endpoint.status has
`error` too. While in error a subscriber gets no new deliveries and queued ones are skipped,
so a receiver that is gone does not build an endless backlog; setting it back to active
(or a Subscription to requested) resumes notifications. The AuditEvent goes to the audit
log (GET [base]/AuditEvent?entity=Subscription/{id}), not the resource store, so it never
feeds the outbox; it is written at once rather than queued, as dead letters are rare.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pymongo.errors import PyMongoError

from fhirhub.auth.audit import AuditLog
from fhirhub.fhir.errors import FhirError
from fhirhub.service.resources import ResourceService
from fhirhub.storage.store import fhir_instant
from fhirhub.subscriptions.model import TAG_SYSTEM

log = logging.getLogger(__name__)

DCM = "http://dicom.nema.org/resources/ontology/DCM"
WORKER = "fhirhub-notification-worker"


def dead_letter_record(
    subscriber: str, delivery: dict[str, Any], attempts: int, error: str, now: datetime
) -> dict[str, Any]:
    """An audit-log record (the shape fhirhub/api/audit/search.py searches)."""
    event_id = AuditLog.new_id(now)
    focus = f"{delivery['t']}/{delivery['rid']}/_history/{delivery['v']}"
    patients = list(delivery.get("pat") or [])
    resource = {
        "resourceType": "AuditEvent",
        "id": event_id,
        "type": {"system": DCM, "code": "110106", "display": "Export"},
        "subtype": [{"system": TAG_SYSTEM, "code": "notification-dead-letter"}],
        "action": "E",
        "recorded": fhir_instant(now),
        "outcome": "8",
        "outcomeDesc": f"notification {delivery['eid']} to {subscriber} given up after "
        f"{attempts} attempt(s): {error}"[:1000],
        "agent": [{"who": {"display": WORKER}, "name": WORKER, "requestor": False}],
        "source": {"observer": {"display": "fhirhub"}},
        "entity": [
            {"what": {"reference": subscriber}, "description": "subscriber"},
            {"what": {"reference": focus}, "description": f"{delivery['op']} event"},
        ]
        + [{"what": {"reference": p}, "role": {"code": "1"}} for p in patients],
    }
    return {
        "_id": event_id,
        "ts": now,
        "who": [WORKER],
        "entity": [subscriber, f"{delivery['t']}/{delivery['rid']}", *patients],
        "patient": None,
        "action": "E",
        "outcome": "8",
        "status": int(delivery.get("code") or 0),
        "res": resource,
    }


class DeadLetters:
    def __init__(
        self,
        resources: ResourceService,
        audit: Callable[[dict[str, Any]], object],
        clock: Callable[[], datetime],
    ):
        self.resources = resources
        self.audit = audit
        self.clock = clock

    def record(
        self,
        subscriber: str,
        delivery: dict[str, Any],
        attempts: int,
        error: str,
        disable: bool = True,
    ) -> None:
        """`disable` False: only this event is given up (poison); the subscriber stays."""
        try:
            self.audit(dead_letter_record(subscriber, delivery, attempts, error, self.clock()))
        except PyMongoError as failure:
            log.error("could not record dead letter for %s: %s", subscriber, failure)
        log.warning("dead letter: %s to %s: %s", delivery.get("eid"), subscriber, error)
        if disable:
            self._set_error(subscriber, error)

    def _set_error(self, subscriber: str, error: str) -> None:
        resource_type, resource_id = subscriber.split("/", 1)
        try:
            current = self.resources.read(resource_type, resource_id)
        except FhirError:
            return
        resource = dict(current.resource or {})
        if resource.get("status") != "active":
            return
        resource["status"] = "error"
        if resource_type == "Subscription":
            resource["error"] = f"notifications failed: {error}"[:500]
        try:
            self.resources.update(resource_type, resource_id, resource, if_match=current.etag)
        except FhirError as failure:
            log.warning("could not set %s to error: %s", subscriber, failure)
