"""The write-path check of MedicationRequest (registered as a write hook by hub.py).

Reads the patient's current medications and allergies, runs the pure rules, and either
refuses the write (422 listing every issue) or contains the findings in the order as
DetectedIssues and returns them as warnings. Runs inside validation, so single writes,
batches and transactions (each entry, before anything is written) all pass through it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fhirhub.fhir.errors import Issue, Unprocessable
from fhirhub.medication import issues as fhir_issues
from fhirhub.medication.concepts import is_checked_order, is_current
from fhirhub.medication.knowledge import Knowledge
from fhirhub.medication.rules import Result, check_order
from fhirhub.service import access
from fhirhub.storage.documents import StoredVersion

log = logging.getLogger("fhirhub.medication")
# (resource type, query string, limit) -> current versions
Finder = Callable[[str, str, int], list[StoredVersion]]
MAX_ON_FILE = 500


class PatientContext:
    """The patient's current medications and allergies, read through the search engine."""

    def __init__(self, find: Finder):
        self.find = find

    def current(self, patient: str, exclude: str) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []
        for resource_type, statuses in (
            ("MedicationRequest", "active,draft,on-hold"),
            ("MedicationStatement", "active,intended,on-hold"),
        ):
            for v in self.find(resource_type, f"subject={patient}&status={statuses}", MAX_ON_FILE):
                ref = f"{resource_type}/{v.resource_id}"
                if ref != exclude and v.resource is not None and is_current(v.resource):
                    out.append((ref, v.resource))
        return out

    def allergies(self, patient: str) -> list[tuple[str, dict[str, Any]]]:
        found = self.find("AllergyIntolerance", f"patient={patient}", MAX_ON_FILE)
        return [(f"AllergyIntolerance/{v.resource_id}", v.resource) for v in found if v.resource]


def _author() -> str:
    policy = access.active()
    if policy is None:
        return ""
    principal = policy.principal()
    return principal.fhir_user or ""


def _who() -> str:
    policy = access.active()
    if policy is None:
        return "unrestricted"
    principal = policy.principal()
    return principal.fhir_user or principal.user or f"client {principal.client_id}"


class MedicationSafety:
    def __init__(
        self,
        knowledge: Callable[[], Knowledge],
        context: PatientContext,
        refuse: frozenset[str],
        record_override: Callable[[dict[str, Any]], None] | None = None,
    ):
        self.knowledge = knowledge
        self.context = context
        self.refuse = refuse
        self.record_override = record_override

    def evaluate(
        self,
        order: dict[str, Any],
        extra: list[tuple[str, dict[str, Any]]] = (),  # type: ignore[assignment]
    ) -> Result:
        """Findings for an order (also the CDS services' entry point); `extra`: other draft
        orders considered current alongside what is on file."""
        kb = self.knowledge()
        patient = str((order.get("subject") or {}).get("reference", ""))
        if not patient.startswith("Patient/"):
            result = Result()
            result.unchecked.append("the order has no Patient subject: nothing to check against")
            return result
        own = f"MedicationRequest/{order['id']}" if order.get("id") else ""
        current = self.context.current(patient, own) + list(extra)
        return check_order(order, current, self.context.allergies(patient), kb)

    def __call__(self, order: dict[str, Any]) -> list[Issue]:
        fhir_issues.strip_previous(order)
        override = fhir_issues.override_reason(order)
        if not is_checked_order(order):
            return []
        result = self.evaluate(order)
        blocking = [f for f in result.findings if f.severity in self.refuse]
        if blocking and override is None:
            # Every finding is listed (moderate ones too): the prescriber sees all at once.
            listed = [fhir_issues.as_issue(f, "error") for f in result.findings]
            message = (
                f"{len(blocking)} medication safety issue(s) of severity "
                f"{'/'.join(sorted({f.severity for f in blocking}))}: the order was not stored; "
                f"resend with the {fhir_issues.OVERRIDE_URL} extension giving the reason to "
                "override"
            )
            raise Unprocessable(message, [Issue("business-rule", message), *listed])
        now = datetime.now(UTC).isoformat(timespec="seconds")
        overridden = bool(blocking) and override is not None
        fhir_issues.attach(
            order, result.findings, now, (override or "", _author()) if overridden else None
        )
        warnings = [fhir_issues.as_issue(f) for f in result.findings]
        warnings += [fhir_issues.unchecked_issue(n) for n in result.unchecked]
        if overridden:
            event = {
                "at": now,
                "who": _who(),
                "reason": override,
                "patient": (order.get("subject") or {}).get("reference"),
                "issues": [f"{f.code}/{f.severity}: {f.detail}" for f in blocking],
            }
            log.warning("medication safety override: %s", event)
            if self.record_override is not None:
                self.record_override(event)
            warnings.insert(
                0,
                Issue(
                    "business-rule",
                    f"{len(blocking)} refusing issue(s) overridden by {event['who']}: {override}",
                    "warning",
                ),
            )
        return warnings
