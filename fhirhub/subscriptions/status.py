"""`$status` of a subscriber: counts per delivery state and the latest deliveries.

Shaped like the R4 Subscriptions Backport's $status Parameters (subscription, status, type,
events-since-subscription-start), with a `delivery` part per recent notification so the
delivery history (attempts, last error, HTTP status) is queryable per subscriber.
"""

from __future__ import annotations

from typing import Any

from fhirhub.fhir.errors import BadRequest
from fhirhub.service.resources import ResourceService
from fhirhub.storage.deliveries import STATES, DeliveryStore
from fhirhub.storage.store import fhir_instant
from fhirhub.subscriptions.oversight import check_watcher, shown_delivery

DEFAULT_COUNT = 50
MAX_COUNT = 1000
STATE_NAMES = {"pending": "pending", "delivered": "delivered", "dead": "dead-lettered"}


class SubscriberStatus:
    def __init__(self, resources: ResourceService, deliveries: DeliveryStore):
        self.resources = resources
        self.deliveries = deliveries

    def status(self, resource_type: str, resource_id: str, args: dict[str, str]) -> dict[str, Any]:
        current = self.resources.read(resource_type, resource_id)  # 404/410 as for a read
        resource = current.resource or {}
        check_watcher(resource_type, resource)  # owner or admin (issue 15 item 5)
        key = f"{resource_type}/{resource_id}"
        raw_count = args.get("_count", str(DEFAULT_COUNT))
        if not raw_count.isdigit():
            raise BadRequest("_count must be a non-negative integer")
        state = args.get("state") or None
        if state is not None and state not in STATES:
            raise BadRequest(f"state must be one of {', '.join(STATES)}")
        counts = self.deliveries.counts(key)
        parameters: list[dict[str, Any]] = [
            {"name": "subscription", "valueReference": {"reference": key}},
            {"name": "status", "valueCode": str(resource.get("status", "unknown"))},
            {"name": "type", "valueCode": "query-status"},
            {"name": "events-since-subscription-start", "valueString": str(sum(counts.values()))},
        ]
        parameters += [{"name": s, "valueInteger": n} for s, n in counts.items()]
        if resource.get("error"):
            parameters.append({"name": "error", "valueString": resource["error"]})
        limit = min(int(raw_count), MAX_COUNT)
        for delivery in self.deliveries.recent(key, limit, state):
            if not shown_delivery(delivery):
                continue
            parameters.append({"name": "delivery", "part": _delivery_parts(delivery)})
        return {"resourceType": "Parameters", "parameter": parameters}


def _delivery_parts(delivery: dict[str, Any]) -> list[dict[str, Any]]:
    focus = f"{delivery['t']}/{delivery['rid']}/_history/{delivery['v']}"
    parts: list[dict[str, Any]] = [
        {"name": "event-id", "valueString": delivery["eid"]},
        {"name": "focus", "valueReference": {"reference": focus}},
        {"name": "event", "valueCode": delivery["op"]},
        {"name": "state", "valueCode": delivery["st"]},
        {"name": "attempts", "valueInteger": int(delivery.get("n", 0))},
        {"name": "queued", "valueInstant": fhir_instant(delivery["queued"])},
    ]
    if delivery.get("at"):
        parts.append({"name": "last-attempt", "valueInstant": fhir_instant(delivery["at"])})
    if delivery.get("code"):
        parts.append({"name": "http-status", "valueInteger": int(delivery["code"])})
    if delivery.get("err"):
        parts.append({"name": "last-error", "valueString": str(delivery["err"])})
    if delivery.get("kind"):  # worker/retries.py: unavailable, refused or forbidden
        parts.append({"name": "failure", "valueCode": str(delivery["kind"])})
        parts.append({"name": "refusals", "valueInteger": int(delivery.get("nr", 0))})
    if delivery.get("first"):
        parts.append({"name": "failing-since", "valueInstant": fhir_instant(delivery["first"])})
    if delivery.get("next") and delivery["st"] == "pending":
        parts.append({"name": "next-attempt", "valueInstant": fhir_instant(delivery["next"])})
    if delivery.get("by"):
        parts.append({"name": "worker", "valueString": str(delivery["by"])})
    for patient in delivery.get("pat") or []:
        parts.append({"name": "patient", "valueReference": {"reference": patient}})
    return parts
