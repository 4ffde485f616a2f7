"""OperationOutcome construction (pure)."""

from __future__ import annotations

from typing import Any

from fhirhub.fhir.errors import FhirError, Issue


def outcome(issues: list[Issue]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in issues]}


def outcome_for_error(error: FhirError) -> dict[str, Any]:
    return outcome(error.issues)


def information(message: str, code: str = "informational") -> dict[str, Any]:
    return outcome([Issue(code=code, diagnostics=message, severity="information")])
