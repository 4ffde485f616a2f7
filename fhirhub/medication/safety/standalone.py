"""Standalone DetectedIssues (a reaction the worker runs on committed MedicationRequests).

The write path contains each finding in the order (stored in the same document, so never
half-written). Once the order is committed, this reaction writes one DetectedIssue resource
per contained finding, with `patient` and `implicated` references, so issues are found by
`DetectedIssue?patient=` / `?implicated=`, sit in the patient's compartment and reach the
care team through the ordinary notification routing. Ids derive from the order and the
finding, so a repeated event rewrites nothing; findings an update no longer has, and all
of an order that was stopped, cancelled or deleted, are set `cancelled`. A new high-severity
issue plans one alert to the prescriber (medication/prescriptions/alerts.py).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from typing import Any

from fhirhub.medication.safety.concepts import is_checked_order
from fhirhub.medication.safety.issues import PREFIX
from fhirhub.service.resources import ResourceService
from fhirhub.storage.documents import StoredVersion
from fhirhub.subscriptions.events import ChangeEvent

SOURCE = "https://fhirhub.example/fhir/NamingSystem/medication-safety-finding"
NAMESPACE = uuid.UUID("5b0e7c52-6f2a-4c59-9d8e-2f7e1c3a9b41")
Finder = Callable[[str, str, int], list[StoredVersion]]
PlanAlert = Callable[[str, str], None]  # (DetectedIssue id, MedicationRequest reference)


def issue_id(order_ref: str, contained: dict[str, Any]) -> str:
    code = ((contained.get("code") or {}).get("coding") or [{}])[0].get("code", "")
    others = sorted(str(r.get("reference")) for r in contained.get("implicated") or [])
    return str(uuid.uuid5(NAMESPACE, f"{order_ref}|{code}|{'|'.join(others)}"))


def standalone(order_ref: str, contained: dict[str, Any]) -> dict[str, Any]:
    issue = copy.deepcopy(contained)
    issue["id"] = issue_id(order_ref, contained)
    issue["identifier"] = [{"system": SOURCE, "value": f"{order_ref}#{contained['id']}"}]
    issue["implicated"] = [
        {"reference": order_ref if r.get("reference") == "#" else r.get("reference")}
        for r in contained.get("implicated") or []
    ]
    return issue


def _same(stored: StoredVersion | None, wanted: dict[str, Any]) -> bool:
    if stored is None or stored.deleted or stored.resource is None:
        return False
    current = {k: v for k, v in stored.resource.items() if k != "meta"}
    return current == wanted


class StandaloneIssues:
    def __init__(
        self, resources: Callable[[], ResourceService], find: Finder, plan_alert: PlanAlert
    ):
        self._resources = resources  # lazy: registered while the hub builds its services
        self.find = find
        self.plan_alert = plan_alert

    @property
    def resources(self) -> ResourceService:
        return self._resources()

    def __call__(self, event: ChangeEvent) -> str:
        order_ref = f"MedicationRequest/{event.resource_id}"
        # The current version decides (two events of one order may run in either order).
        current = self.resources.store.current("MedicationRequest", event.resource_id)
        order = None if current is None or current.deleted else current.resource
        wanted: dict[str, dict[str, Any]] = {}
        if order is not None and is_checked_order(order):
            for contained in order.get("contained") or []:
                if contained.get("resourceType") == "DetectedIssue" and str(
                    contained.get("id", "")
                ).startswith(PREFIX):
                    issue = standalone(order_ref, contained)
                    wanted[issue["id"]] = issue
        written = cancelled = 0
        for issue_id_, issue in wanted.items():
            stored = self.resources.store.current("DetectedIssue", issue_id_)
            if _same(stored, issue):
                continue
            self.resources.update("DetectedIssue", issue_id_, issue)
            written += 1
            if issue.get("severity") == "high":
                self.plan_alert(issue_id_, order_ref)
        for found in self.find("DetectedIssue", f"implicated={order_ref}", 500):
            resource = found.resource or {}
            # Only this order's own findings: another order's issue implicating this one
            # (its interaction partner) is that order's to keep or cancel.
            ours = any(
                i.get("system") == SOURCE and str(i.get("value", "")).startswith(f"{order_ref}#")
                for i in resource.get("identifier") or []
            )
            if not ours or found.resource_id in wanted or resource.get("status") == "cancelled":
                continue
            self.resources.update(
                "DetectedIssue", found.resource_id, {**resource, "status": "cancelled"}
            )
            cancelled += 1
        return f"{len(wanted)} issue(s): {written} written, {cancelled} cancelled"
