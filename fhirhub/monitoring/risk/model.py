"""RiskAssessment resources for the scores (pure)."""

from __future__ import annotations

import uuid
from typing import Any

METHOD_SYSTEM = "https://fhirhub.example/fhir/CodeSystem/risk-score"
SCORE_EXTENSION = "https://fhirhub.example/fhir/StructureDefinition/risk-score-total"
PROBABILITY = "http://terminology.hl7.org/CodeSystem/risk-probability"
NAMESPACE = uuid.UUID("0e9b3f62-5d1a-4b8c-9f47-3a2c1d6e8b90")
QUALITATIVE = {
    "no": "negligible",
    "low": "low",
    "low-medium": "moderate",
    "medium": "moderate",
    "high": "high",
}


def assessment_id(method: str, *parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, ":".join((method, *parts))))


def risk_assessment(
    assessment_id: str,
    method: str,
    title: str,
    subject: str,
    when: str,
    total: int,
    band: str,
    outcome: str,
    basis: list[dict[str, Any]],
    detail: str,
    encounter: str | None = None,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "RiskAssessment",
        "id": assessment_id,
        "extension": [{"url": SCORE_EXTENSION, "valueInteger": total}],
        "status": "final",
        "method": {"coding": [{"system": METHOD_SYSTEM, "code": method, "display": title}]},
        "subject": {"reference": subject},
        "occurrenceDateTime": when,
        "prediction": [
            {
                "outcome": {"text": outcome},
                "qualitativeRisk": {
                    "coding": [{"system": PROBABILITY, "code": QUALITATIVE[band]}],
                    "text": band,
                },
                "rationale": f"{title} {total} ({band}): {detail}",
            }
        ],
        "note": [{"text": detail}],
    }
    if basis:
        resource["basis"] = basis
    if encounter:
        resource["encounter"] = {"reference": encounter}
    return resource


def total_of(assessment: dict[str, Any]) -> int | None:
    for ext in assessment.get("extension") or []:
        if ext.get("url") == SCORE_EXTENSION:
            return int(ext["valueInteger"])
    return None
