"""Shared builders for the monitoring tests: an enrolled patient, readings, waiting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from flask.testing import FlaskClient

from fhirhub.monitoring.alerts.model import ALERT_SYSTEM
from fhirhub.monitoring.enrolment.plans import CATEGORY, CATEGORY_SYSTEM
from tests.helpers import body, create
from tests.test_notifications_support import wait_for

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat(timespec="seconds")


def care_plan(
    patient: str, codes: list[str], goals: list[str] = (), **timing: Any
) -> dict[str, Any]:  # type: ignore[assignment]
    activity = []
    for code in codes:
        detail: dict[str, Any] = {
            "status": "in-progress",
            "code": {"coding": [{"system": LOINC, "code": code}]},
        }
        if timing:
            detail["scheduledTiming"] = {"repeat": timing}
        activity.append({"detail": detail})
    plan: dict[str, Any] = {
        "resourceType": "CarePlan",
        "status": "active",
        "intent": "plan",
        "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": CATEGORY}]}],
        "subject": {"reference": patient},
        "activity": activity,
    }
    if goals:
        plan["goal"] = [{"reference": g} for g in goals]
    return plan


def vital(
    patient: str, code: str, value: float, unit: str, when: str | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": patient},
        "effectiveDateTime": when or ago(seconds=1),
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
        **extra,
    }


def enrol(client: FlaskClient, patient: str, codes: list[str], **timing: Any) -> str:
    return str(body(create(client, care_plan(patient, codes, **timing)))["id"])


def alerts(
    client: FlaskClient, patient: str, rule: str, kind: str = "Flag"
) -> list[dict[str, Any]]:
    value = f"{patient.split('/')[-1]}:{rule}"
    query = urlencode({"identifier": f"{ALERT_SYSTEM}|{value}"})
    bundle = body(client.get(f"/fhir/{kind}?{query}"))
    return [e["resource"] for e in bundle.get("entry") or []]


def wait_alert(
    client: FlaskClient, patient: str, rule: str, status: str = "active", timeout: float = 15
) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        flags = [f for f in alerts(client, patient, rule) if f["status"] == status]
        return flags[0] if flags else None

    result: dict[str, Any] = wait_for(found, timeout, f"{rule} alert {status}")
    return result


def alert_count(flag: dict[str, Any]) -> int:
    from fhirhub.monitoring.alerts.model import state

    return int(state(flag)["count"])
