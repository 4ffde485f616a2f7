"""Findings as CDS Hooks 2.0 cards (pure): indicator by severity, a suggestion to remove
the draft order for refusing findings, override reasons the EHR can offer."""

from __future__ import annotations

import uuid
from typing import Any

from fhirhub.medication.rules import Finding

INDICATOR = {"high": "critical", "moderate": "warning", "low": "info"}
SOURCE = {
    "label": "fhirhub medication safety",
    "topic": {
        "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
        "code": "DRG",
        "display": "medication safety",
    },
}
REASONS_SYSTEM = "https://fhirhub.example/fhir/CodeSystem/medication-override-reason"
OVERRIDE_REASONS = [
    {
        "system": REASONS_SYSTEM,
        "code": "benefit-outweighs-risk",
        "display": "Benefit outweighs the risk",
    },
    {"system": REASONS_SYSTEM, "code": "monitored", "display": "Patient will be monitored"},
    {
        "system": REASONS_SYSTEM,
        "code": "previously-tolerated",
        "display": "Patient has tolerated this before",
    },
    {"system": REASONS_SYSTEM, "code": "not-applicable", "display": "Alert not applicable"},
]


def finding_card(finding: Finding, order_ref: str, label: str) -> dict[str, Any]:
    summary = f"{finding.display}: {label}"
    card: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "summary": summary[:140],
        "detail": finding.detail,
        "indicator": INDICATOR[finding.severity],
        "source": SOURCE,
        "overrideReasons": OVERRIDE_REASONS,
    }
    if finding.severity in ("high", "moderate") and order_ref:
        card["suggestions"] = [
            {
                "label": f"Remove the draft order for {label}"[:140],
                "uuid": str(uuid.uuid4()),
                "actions": [
                    {
                        "type": "delete",
                        "description": f"Remove {order_ref} from the draft orders",
                        "resourceId": [order_ref],
                    }
                ],
            }
        ]
        card["selectionBehavior"] = "at-most-one"
    return card


def unchecked_card(note: str) -> dict[str, Any]:
    return {
        "uuid": str(uuid.uuid4()),
        "summary": "Medication safety: could not check"[:140],
        "detail": note,
        "indicator": "info",
        "source": SOURCE,
    }


def banner_card(summary: str, detail: str, indicator: str = "info") -> dict[str, Any]:
    return {
        "uuid": str(uuid.uuid4()),
        "summary": summary[:140],
        "detail": detail,
        "indicator": indicator,
        "source": SOURCE,
    }
