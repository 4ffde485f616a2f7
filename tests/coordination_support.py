"""Set-up for the care-coordination tests: patient p with a care team (Dr Lead manages it,
Nurse Nye is a plain member), a specialist (Dr Spec) and an outsider on no team, patient q,
and p's records of every kind a referral does and does not share. (No tests here.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask.testing import FlaskClient

from fhirhub.hub import Hub
from tests.auth_helpers import PASSWORD, register_app
from tests.test_auth_enforcement import Caller, caller

ROLE_SYSTEM = "https://fhirhub.example/fhir/CodeSystem/care-team-role"
MANAGER_ROLE = [{"coding": [{"system": ROLE_SYSTEM, "code": "manager"}]}]
REFERRAL = {"coding": [{"system": "http://snomed.info/sct", "code": "3457005"}]}
FULFILL = {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]}
USERS = {"lead": "drlead", "nurse": "nurse", "spec": "drspec", "outsider": "outsider"}


def put(hub: Hub, resource: dict[str, Any]) -> None:
    hub.resources.update(resource["resourceType"], resource["id"], resource)


def _subject(kind: str, rid: str, pid: str, **fields: Any) -> dict[str, Any]:
    key = "patient" if kind == "AllergyIntolerance" else "subject"
    return {"resourceType": kind, "id": rid, key: {"reference": f"Patient/{pid}"}, **fields}


def world(hub: Hub) -> None:
    register_app(hub)
    for pid in ("p", "q"):
        put(hub, {"resourceType": "Patient", "id": pid, "name": [{"family": pid.upper()}]})
        put(hub, _subject("Condition", f"cond-{pid}", pid, code={"text": "Heart failure"}))
    for who in USERS:
        put(hub, {"resourceType": "Practitioner", "id": who, "name": [{"family": who}]})
        hub.auth.add_user(USERS[who], PASSWORD, fhir_user=f"Practitioner/{who}")
    hub.auth.add_user("pat", PASSWORD, fhir_user="Patient/p")
    hub.auth.add_user("root", PASSWORD, admin=True)
    put(
        hub,
        {
            "resourceType": "CareTeam",
            "id": "team-p",
            "status": "active",
            "subject": {"reference": "Patient/p"},
            "participant": [
                {"member": {"reference": "Practitioner/lead"}, "role": MANAGER_ROLE},
                {"member": {"reference": "Practitioner/nurse"}},
            ],
        },
    )
    recent = datetime.now(UTC).date().isoformat()
    old = (datetime.now(UTC) - timedelta(days=800)).date().isoformat()
    loinc = {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}
    for resource in (
        _subject("CarePlan", "plan-active", "p", status="active", intent="plan"),
        _subject("CarePlan", "plan-done", "p", status="completed", intent="plan"),
        _subject(
            "MedicationRequest",
            "med-p",
            "p",
            status="active",
            intent="order",
            medicationCodeableConcept={"text": "furosemide"},
        ),
        _subject(
            "AllergyIntolerance",
            "allergy-p",
            "p",
            code={"text": "penicillin"},
            clinicalStatus={
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                        "code": "active",
                    }
                ]
            },
        ),
        _subject(
            "Observation", "obs-recent", "p", status="final", code=loinc, effectiveDateTime=recent
        ),
        _subject("Observation", "obs-old", "p", status="final", code=loinc, effectiveDateTime=old),
        _subject(
            "Immunization",
            "imm-p",
            "p",
            status="completed",
            vaccineCode={"text": "flu"},
            occurrenceDateTime=recent,
        ),
        _subject("Encounter", "enc-p", "p", status="finished", **{"class": {"code": "AMB"}}),
        _document("doc-echo", "p", "Echo report"),
        _document("doc-private", "p", "Psychotherapy note"),
    ):
        if resource["resourceType"] == "Immunization":
            resource["patient"] = resource.pop("subject")
        put(hub, resource)


def _document(rid: str, pid: str, text: str) -> dict[str, Any]:
    return {
        "resourceType": "DocumentReference",
        "id": rid,
        "status": "current",
        "subject": {"reference": f"Patient/{pid}"},
        "type": {"text": text},
        "content": [{"attachment": {"contentType": "text/plain", "data": "aGVsbG8="}}],
    }


def who(client: FlaskClient, hub: Hub, name: str, scope: str = "user/*.cruds") -> Caller:
    if name == "patient":
        return caller(client, hub, "patient/*.cruds", patient="p")
    return caller(client, hub, scope, user=USERS.get(name, name))


def referral_request(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "category": [REFERRAL],
        "priority": "urgent",
        "code": {"text": "Cardiology consultation"},
        "reasonCode": [{"text": "Worsening heart failure"}],
        "subject": {"reference": "Patient/p"},
        "requester": {"reference": "Practitioner/lead"},
        "performer": [{"reference": "Practitioner/spec"}],
        "supportingInfo": [{"reference": "DocumentReference/doc-echo"}],
        **extra,
    }


def referral_task(request_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "code": FULFILL,
        "focus": {"reference": f"ServiceRequest/{request_id}"},
        "for": {"reference": "Patient/p"},
        "requester": {"reference": "Practitioner/lead"},
        "owner": {"reference": "Practitioner/spec"},
        **extra,
    }


def move(actor: Caller, task_id: str, status: str, **extra: Any) -> Any:
    current = actor.get(f"/fhir/Task/{task_id}").get_json()
    return actor.send("PUT", f"/fhir/Task/{task_id}", {**current, "status": status, **extra})
