"""Builders of real medication resources for the medication safety tests."""

from __future__ import annotations

from typing import Any

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
OVERRIDE = "https://fhirhub.example/fhir/StructureDefinition/medication-safety-override"


def order(
    patient: str,
    code: str,
    display: str = "",
    *,
    dose: float | None = None,
    unit: str = "mg",
    per_day: int = 1,
    period_unit: str = "d",
    status: str = "active",
    reason: str | None = None,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": code, "display": display or code}]
        },
        "subject": {"reference": patient},
    }
    if dose is not None:
        resource["dosageInstruction"] = [
            {
                "timing": {
                    "repeat": {"frequency": per_day, "period": 1, "periodUnit": period_unit}
                },
                "doseAndRate": [
                    {"doseQuantity": {"value": dose, "unit": unit, "code": unit, "system": UCUM}}
                ],
            }
        ]
    if reason is not None:
        resource["extension"] = [{"url": OVERRIDE, "valueString": reason}]
    return resource


def statement(patient: str, code: str, display: str = "") -> dict[str, Any]:
    return {
        "resourceType": "MedicationStatement",
        "status": "active",
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": code, "display": display or code}]
        },
        "subject": {"reference": patient},
    }


def allergy(
    patient: str, system: str, code: str, display: str = "", **extra: Any
) -> dict[str, Any]:
    return {
        "resourceType": "AllergyIntolerance",
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                    "code": "active",
                }
            ]
        },
        "code": {"coding": [{"system": system, "code": code, "display": display or code}]},
        "patient": {"reference": patient},
        **extra,
    }
