"""Referrals end to end through the REST API with a token per role: the referring care
team, the specialist, a plain care-team member, an outsider and the patient. While the
referral Task is accepted and open the specialist reads exactly what its Consent shares,
on every read path; the consult note comes back to the referring team and completes the
Task; then the access is gone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from fhirhub.config import Settings
from fhirhub.coordination.referrals.consent import consent_id
from fhirhub.hub import Hub
from fhirhub.worker.runner import NotificationWorker
from tests.coordination_support import (
    move,
    referral_request,
    referral_task,
    who,
    world,
)
from tests.test_auth_enforcement import Caller
from tests.test_notifications_support import notification_settings, wait_for

SHARED = [
    "AllergyIntolerance/allergy-p",
    "CarePlan/plan-active",
    "Condition/cond-p",
    "DocumentReference/doc-echo",
    "MedicationRequest/med-p",
    "Observation/obs-recent",
    "Patient/p",
]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return notification_settings(settings)


@pytest.fixture
def hub_world(auth_hub: Hub) -> Hub:
    world(auth_hub)
    return auth_hub


@pytest.fixture
def running(hub_world: Hub) -> Iterator[NotificationWorker]:
    worker = NotificationWorker(hub_world)
    worker.start()
    yield worker
    worker.shutdown()


def created(response: Any) -> str:
    assert response.status_code == 201, response.get_data(as_text=True)
    return str(response.get_json()["id"])


def refer(lead: Caller) -> tuple[str, str]:
    request_id = created(lead.send("POST", "/fhir/ServiceRequest", referral_request()))
    task_id = created(lead.send("POST", "/fhir/Task", referral_task(request_id)))
    return request_id, task_id


def shared_view(spec: Caller) -> list[str]:
    """Everything of patient p the specialist's searches return."""
    found: list[str] = []
    for kind in (
        "AllergyIntolerance",
        "CarePlan",
        "Condition",
        "DocumentReference",
        "Encounter",
        "Immunization",
        "MedicationRequest",
        "Observation",
    ):
        found += spec.ids(f"/fhir/{kind}?patient=Patient/p")
    return sorted(found + spec.ids("/fhir/Patient?_id=p"))


def test_referral_opens_exactly_the_shared_records_until_it_completes(
    auth_client: FlaskClient, hub_world: Hub, running: NotificationWorker
) -> None:
    lead, spec = who(auth_client, hub_world, "lead"), who(auth_client, hub_world, "spec")
    request_id, task_id = refer(lead)
    # requested: the specialist sees the referral (to decide), nothing of the record yet
    assert spec.get(f"/fhir/Task/{task_id}").status_code == 200
    assert spec.get(f"/fhir/ServiceRequest/{request_id}").status_code == 200
    assert shared_view(spec) == []
    assert spec.get("/fhir/Condition/cond-p").status_code == 404

    assert move(spec, task_id, "received").status_code == 200
    assert move(spec, task_id, "accepted").status_code == 200
    consent = hub_world.resources.read("Consent", consent_id(task_id)).resource
    assert consent is not None and consent["status"] == "active"
    assert consent["provision"]["actor"][0]["reference"]["reference"] == "Practitioner/spec"

    # search, read, include, history, $everything: the same shared set, nothing else
    assert shared_view(spec) == SHARED
    for path in ("/fhir/Condition/cond-p", "/fhir/Observation/obs-recent/_history/1"):
        assert spec.get(path).status_code == 200, path
    for path in (
        "/fhir/Immunization/imm-p",
        "/fhir/Observation/obs-old",
        "/fhir/CarePlan/plan-done",
        "/fhir/DocumentReference/doc-private",
        "/fhir/Encounter/enc-p",
        "/fhir/Condition/cond-q",
        "/fhir/Patient/q",
    ):
        assert spec.get(path).status_code == 404, path
    assert spec.get("/fhir/Observation/obs-old/_history").status_code == 404
    history = spec.ids("/fhir/Observation/_history")
    assert history == ["Observation/obs-recent"]
    included = spec.ids(
        "/fhir/Patient?_id=p&_revinclude=Immunization:patient&_revinclude=Condition:patient"
    )
    assert "Immunization/imm-p" not in included and "Condition/cond-p" in included
    included = spec.ids("/fhir/Encounter?patient=Patient/p&_include=Encounter:subject")
    assert included == []
    everything = spec.ids("/fhir/Patient/p/$everything")
    assert set(SHARED) <= set(everything)
    assert not {"Immunization/imm-p", "Encounter/enc-p", "Observation/obs-old"} & set(everything)
    assert spec.get("/fhir/Patient/q/$everything").status_code == 404

    # the specialist writes the consult note; nothing else of the record
    immunization = {
        "resourceType": "Immunization",
        "status": "completed",
        "patient": {"reference": "Patient/p"},
        "vaccineCode": {"text": "flu"},
        "occurrenceDateTime": "2026-01-01",
    }
    assert spec.send("POST", "/fhir/Immunization", immunization).status_code == 403
    assert move(spec, task_id, "in-progress").status_code == 200
    note = {
        "resourceType": "DocumentReference",
        "status": "current",
        "docStatus": "final",
        "type": {"coding": [{"system": "http://loinc.org", "code": "11488-4"}]},
        "subject": {"reference": "Patient/p"},
        "author": [{"reference": "Practitioner/spec"}],
        "context": {"related": [{"reference": f"ServiceRequest/{request_id}"}]},
        "content": [{"attachment": {"contentType": "text/plain", "data": "T0sgdG8gZ28="}}],
    }
    note_id = created(spec.send("POST", "/fhir/DocumentReference", note))

    # routed back: Task output + completed, a Communication to the requester
    def completed() -> dict[str, Any] | None:
        task = lead.get(f"/fhir/Task/{task_id}").get_json()
        return task if task["status"] == "completed" else None

    task = wait_for(completed, 20, "the referral Task to complete")
    assert task["output"][0]["valueReference"]["reference"] == f"DocumentReference/{note_id}"
    messages = lead.get("/fhir/Communication?recipient=Practitioner/lead&subject=Patient/p")
    payloads = [e["resource"]["payload"][0] for e in messages.get_json()["entry"]]
    assert payloads == [{"contentReference": {"reference": f"DocumentReference/{note_id}"}}]

    def consent_ended() -> dict[str, Any] | None:
        found = hub_world.resources.read("Consent", consent_id(task_id)).resource
        return found if found and found["status"] == "inactive" else None

    # written just after the Task (by its guard's ticket, else by the reaction)
    consent = wait_for(consent_ended, 10, "the referral Consent to end")
    assert "end" in consent["provision"]["period"]
    # access has ended, on every path
    assert shared_view(spec) == []
    assert spec.get("/fhir/Condition/cond-p").status_code == 404
    assert spec.get("/fhir/Patient/p/$everything").status_code == 404
    assert spec.get(f"/fhir/DocumentReference/{note_id}").status_code == 404
    assert move(spec, task_id, "in-progress").status_code == 403  # no longer theirs
    assert move(lead, task_id, "cancelled", statusReason={"text": "x"}).status_code == 422


def test_who_may_refer_and_who_may_move_the_task(auth_client: FlaskClient, hub_world: Hub) -> None:
    lead, nurse = who(auth_client, hub_world, "lead"), who(auth_client, hub_world, "nurse")
    outsider, patient = (
        who(auth_client, hub_world, "outsider"),
        who(auth_client, hub_world, "patient"),
    )
    spec = who(auth_client, hub_world, "spec")
    request_id = created(lead.send("POST", "/fhir/ServiceRequest", referral_request()))
    task = referral_task(request_id)
    # opening the record to a specialist needs someone who manages the patient's care
    for caller_ in (nurse, outsider, patient, spec):
        assert caller_.send("POST", "/fhir/Task", task).status_code == 403
    assert hub_world.search.find_resources("Task", "code=fulfill") == []
    task_id = created(lead.send("POST", "/fhir/Task", task))
    # only the owner accepts; not the team, the patient or an outsider
    for caller_ in (nurse, lead, patient, outsider):
        assert move(caller_, task_id, "accepted").status_code in (403, 404)
    assert outsider.get("/fhir/Condition/cond-p").status_code == 404
    # the owner cannot hand the record to someone else, nor redirect it to patient q
    assert (
        move(spec, task_id, "accepted", owner={"reference": "Practitioner/outsider"}).status_code
        == 403
    )
    assert move(spec, task_id, "accepted", **{"for": {"reference": "Patient/q"}}).status_code == 403
    assert hub_world.resources.read("Task", task_id).version == 1  # nothing written
    assert move(spec, task_id, "accepted").status_code == 200
    assert spec.get("/fhir/Condition/cond-p").status_code == 200
    assert outsider.get("/fhir/Condition/cond-p").status_code == 404
    # the requesting side may cancel (with a reason): the access ends at once
    assert move(nurse, task_id, "cancelled").status_code == 422
    reason = {"statusReason": {"text": "patient moved away"}}
    assert move(nurse, task_id, "cancelled", **reason).status_code == 200
    assert spec.get("/fhir/Condition/cond-p").status_code == 404


def test_illegal_transitions_and_bad_referrals_are_refused_with_nothing_written(
    auth_client: FlaskClient, hub_world: Hub
) -> None:
    lead, spec = who(auth_client, hub_world, "lead"), who(auth_client, hub_world, "spec")
    request_id, task_id = refer(lead)
    for status in ("completed", "in-progress", "draft"):
        response = move(spec, task_id, status)
        assert response.status_code == 422, status
        outcome = response.get_json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert "cannot go from requested" in outcome["issue"][0]["diagnostics"]
    assert move(spec, task_id, "rejected").status_code == 422  # needs a statusReason
    assert hub_world.resources.read("Task", task_id).version == 1
    patch = [{"op": "replace", "path": "/status", "value": "completed"}]
    response = spec.client.patch(
        f"/fhir/Task/{task_id}",
        json=patch,
        headers={**spec.headers, "Content-Type": "application/json-patch+json"},
    )
    assert response.status_code == 422
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {**referral_task(request_id), "id": task_id, "status": "completed"},
                "request": {"method": "PUT", "url": f"Task/{task_id}"},
            }
        ],
    }
    assert spec.send("POST", "/fhir", bundle).status_code == 422
    assert hub_world.resources.read("Task", task_id).version == 1
    # a referral Task must start requested, focus an existing referral of the same patient
    bad = [
        referral_task(request_id, status="accepted"),
        referral_task("nope"),
        referral_task(request_id, **{"for": {"reference": "Patient/q"}}),
        referral_task(request_id, owner=None),
    ]
    other = created(
        lead.send("POST", "/fhir/ServiceRequest", referral_request(category=[{"text": "lab"}]))
    )
    bad.append(referral_task(other))
    for task in bad:
        task = {k: v for k, v in task.items() if v is not None}
        response = lead.send("POST", "/fhir/Task", task)
        assert response.status_code in (403, 422), task
    root = who(auth_client, hub_world, "root")
    assert root.send("POST", "/fhir/Task", referral_task("nope")).status_code == 422
    assert len(hub_world.search.find_resources("Task", "code=fulfill")) == 1
    assert lead.send("DELETE", f"/fhir/Task/{task_id}", {}).status_code == 422


def test_consent_with_an_empty_provision_is_refused(
    auth_client: FlaskClient, hub_world: Hub
) -> None:
    lead = who(auth_client, hub_world, "lead")
    consent = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": "Patient/p"},
        "policyRule": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}
            ]
        },
        "provision": {"type": "permit"},
    }
    response = lead.send("POST", "/fhir/Consent", consent)
    assert response.status_code == 422
    assert "provision is empty" in response.get_json()["issue"][0]["diagnostics"]
    assert hub_world.search.find_resources("Consent", "patient=Patient/p") == []
    # a Consent opens the record: only the patient's care manager may write one
    role = {
        "coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "PRCP"}
        ]
    }
    actor = [{"role": role, "reference": {"reference": "Practitioner/outsider"}}]
    granting = {**consent, "provision": {"type": "permit", "actor": actor}}
    assert (
        who(auth_client, hub_world, "nurse").send("POST", "/fhir/Consent", granting).status_code
        == 403
    )
    assert lead.send("POST", "/fhir/Consent", granting).status_code == 201
