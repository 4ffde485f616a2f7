"""The FHIR shape of an alert (pure): a Flag on the patient and a Task for the care team.

Both carry the identifier ALERT_SYSTEM|"<patient id>:<rule id>", which is how an open alert
is found again (de-duplication) whoever wrote it. The Flag's extension keeps the count of
readings that tripped the rule while it was open and the latest of them.
"""

from __future__ import annotations

import uuid
from typing import Any

from fhirhub.monitoring.rules.table import PRIORITIES, Rule
from fhirhub.monitoring.rules.verdicts import Point

ALERT_SYSTEM = "https://fhirhub.example/fhir/monitoring-alert"
RULE_SYSTEM = "https://fhirhub.example/fhir/CodeSystem/monitoring-rule"
ALERT_EXTENSION = "https://fhirhub.example/fhir/StructureDefinition/monitoring-alert"
NAMESPACE = uuid.UUID("a3f1c9e2-7b4d-4c1a-9e8f-2d6b5a4c3e11")
FLAG_CATEGORY = "http://terminology.hl7.org/CodeSystem/flag-category"


def alert_value(patient: str, rule_id: str) -> str:
    return f"{patient.split('/')[-1]}:{rule_id}"


def alert_ids(patient: str, rule_id: str, cause: str) -> tuple[str, str]:
    """Flag and Task ids derived from what opened the alert: a retried reaction writes the
    same resources again instead of opening a second alert."""
    seed = f"{alert_value(patient, rule_id)}:{cause}"
    return str(uuid.uuid5(NAMESPACE, "flag:" + seed)), str(uuid.uuid5(NAMESPACE, "task:" + seed))


def rule_coding(rule: Rule) -> dict[str, Any]:
    return {"system": RULE_SYSTEM, "code": rule.id, "display": rule.title}


def state(flag: dict[str, Any]) -> dict[str, Any]:
    """count, observation, value and effective time kept in the Flag's extension."""
    out: dict[str, Any] = {"count": 0, "observation": None, "effective": None, "tier": 0}
    for ext in flag.get("extension") or []:
        if ext.get("url") != ALERT_EXTENSION:
            continue
        for part in ext.get("extension") or []:
            url = part.get("url")
            if url == "count":
                out["count"] = part.get("valueInteger", 0)
            elif url == "latest":
                out["observation"] = (part.get("valueReference") or {}).get("reference")
            elif url == "effective":
                out["effective"] = part.get("valueDateTime")
            elif url == "tier":
                out["tier"] = part.get("valueInteger", 0)
            elif url == "value":
                out["value"] = part.get("valueQuantity")
    return out


def extension(count: int, point: Point, unit: str, tier: int) -> dict[str, Any]:
    return {
        "url": ALERT_EXTENSION,
        "extension": [
            {"url": "count", "valueInteger": count},
            {"url": "latest", "valueReference": {"reference": point.observation}},
            {"url": "effective", "valueDateTime": point.effective.isoformat()},
            {"url": "value", "valueQuantity": {"value": point.value, "unit": unit}},
            {"url": "tier", "valueInteger": tier},
        ],
    }


def flag(
    flag_id: str, patient: str, rule: Rule, point: Point, unit: str, now: str
) -> dict[str, Any]:
    return {
        "resourceType": "Flag",
        "id": flag_id,
        "identifier": [{"system": ALERT_SYSTEM, "value": alert_value(patient, rule.id)}],
        "status": "active",
        "category": [{"coding": [{"system": FLAG_CATEGORY, "code": "clinical"}]}],
        "code": {"coding": [rule_coding(rule)], "text": rule.title},
        "subject": {"reference": patient},
        "period": {"start": now},
        "extension": [extension(1, point, unit, 0)],
    }


def task(
    task_id: str,
    flag_id: str,
    patient: str,
    rule: Rule,
    point: Point,
    owner: str | None,
    now: str,
    detail: str,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Task",
        "id": task_id,
        "identifier": [{"system": ALERT_SYSTEM, "value": alert_value(patient, rule.id)}],
        "status": "requested",
        "intent": "order",
        "priority": rule.priority,
        "code": {"text": "Review remote monitoring alert"},
        "description": f"{rule.title}: {detail}",
        "for": {"reference": patient},
        "focus": {"reference": point.observation},
        "reasonCode": {"coding": [rule_coding(rule)], "text": rule.title},
        "reasonReference": {"reference": f"Flag/{flag_id}"},
        "authoredOn": now,
        "lastModified": now,
    }
    if owner:
        resource["owner"] = {"reference": owner}
    return resource


def raised(priority: str) -> str:
    index = PRIORITIES.index(priority) if priority in PRIORITIES else 0
    return PRIORITIES[min(index + 1, len(PRIORITIES) - 1)]
