"""The prescription lifecycle through the REST API on the embedded database: dispenses
checked against dispenseRequest (refills enforced, also against a concurrent dispense of
the last fill), $refills, refill request Tasks decided by the prescriber and told to the
patient, running-out reminders and adherence (PDC) — the messages through a real SMTP
server on loopback, recorded as Communications."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from fhirhub.config import Settings
from fhirhub.fhir.errors import FhirError
from fhirhub.hub import Hub
from fhirhub.worker.runner import NotificationWorker
from tests.auth_helpers import register_app
from tests.helpers import FHIR_JSON, body, create, patient
from tests.medication_support import RXNORM, UCUM, order
from tests.smtp_support import MailServer
from tests.test_notifications_support import notification_settings, wait_for

ATORVASTATIN = ("259255", "Atorvastatin 80 MG Oral Tablet")
TASK_CODES = "https://fhirhub.example/fhir/CodeSystem/medication-task"


@pytest.fixture
def settings(settings: Settings, mail: MailServer) -> Settings:
    return notification_settings(
        settings, smtp_url=mail.url, smtp_from="pharmacy@example.org", timer_poll_ms=50
    )


def _day(offset: int) -> str:
    return (datetime.now(UTC).date() + timedelta(days=offset)).isoformat()


def _people(client: FlaskClient, email: str = "pat@example.org") -> tuple[str, dict[str, str]]:
    telecom = [{"system": "email", "value": email}]
    pid = f"Patient/{body(create(client, patient(telecom=telecom)))['id']}"
    doctor = {
        "resourceType": "Practitioner",
        "name": [{"family": "Lind"}],
        "telecom": [{"system": "email", "value": "dr.lind@example.org"}],
    }
    return pid, {"reference": f"Practitioner/{body(create(client, doctor))['id']}"}


def _order(client: FlaskClient, pid: str, prescriber: dict[str, str], repeats: int = 1) -> str:
    resource = {
        **order(pid, *ATORVASTATIN),
        "requester": prescriber,
        "courseOfTherapyType": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy",
                    "code": "continuous",
                }
            ]
        },
        "dispenseRequest": {
            "validityPeriod": {"start": _day(-200), "end": _day(200)},
            "numberOfRepeatsAllowed": repeats,
            "quantity": {"value": 30, "unit": "tablet", "code": "{tbl}", "system": UCUM},
            "expectedSupplyDuration": {"value": 30, "unit": "days", "code": "d", "system": UCUM},
        },
    }
    return f"MedicationRequest/{body(create(client, resource))['id']}"


def _dispense(pid: str, order_ref: str, handed: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "MedicationDispense",
        "status": "completed",
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": ATORVASTATIN[0], "display": ATORVASTATIN[1]}]
        },
        "subject": {"reference": pid},
        "authorizingPrescription": [{"reference": order_ref}],
        "quantity": {"value": 30, "unit": "tablet", "code": "{tbl}", "system": UCUM},
        "whenHandedOver": f"{handed}T10:00:00Z",
        **extra,
    }


def _post(client: FlaskClient, resource: dict[str, Any]) -> Any:
    return client.post(f"/fhir/{resource['resourceType']}", json=resource, headers=FHIR_JSON)


def _count(client: FlaskClient, query: str) -> int:
    return int(body(client.get(f"/fhir/{query}&_summary=count"))["total"])


def _params(resource: dict[str, Any]) -> dict[str, Any]:
    return {
        p["name"]: next(v for k, v in p.items() if k.startswith("value"))
        for p in resource["parameter"]
    }


def test_dispenses_are_checked_against_the_prescription(client: FlaskClient) -> None:
    pid, prescriber = _people(client)
    order_ref = _order(client, pid, prescriber, repeats=1)
    first = _post(client, _dispense(pid, order_ref, _day(-40)))
    assert first.status_code == 201, first.get_data(as_text=True)
    second = client.post(
        "/fhir/MedicationDispense",
        json=_dispense(pid, order_ref, _day(-10)),
        headers={**FHIR_JSON, "Prefer": "return=OperationOutcome"},
    )
    assert second.status_code == 201
    assert "fill 2 of 2" in " ".join(i["diagnostics"] for i in body(second)["issue"])
    third = _post(client, _dispense(pid, order_ref, _day(0)))
    assert third.status_code == 422 and "no refills remaining" in third.get_data(as_text=True)
    refills = _params(body(client.get(f"/fhir/{order_ref}/$refills")))
    assert refills == {
        "dispensed": 2,
        "fillsAllowed": 2,
        "refillsRemaining": 0,
        "supplyEnds": _day(20),
    }
    other, _ = _people(client, "other@example.org")
    for bad, words in (
        (_dispense(other, order_ref, _day(0)), "not the patient"),
        (_dispense(pid, "MedicationRequest/none", _day(0)), "does not exist"),
        (
            _dispense(
                pid, order_ref, _day(0), quantity={"value": 90, "code": "{tbl}", "system": UCUM}
            ),
            "more than",
        ),
    ):
        response = _post(client, bad)
        assert response.status_code == 422 and words in response.get_data(as_text=True)
    late_ref = _order(client, pid, prescriber)
    late = _post(client, _dispense(pid, late_ref, _day(300)))
    assert late.status_code == 422 and "may be dispensed from" in late.get_data(as_text=True)
    assert _count(client, f"MedicationDispense?subject={pid}") == 2


def test_two_concurrent_dispenses_of_the_last_fill(client: FlaskClient, hub: Hub) -> None:
    pid, prescriber = _people(client)
    order_ref = _order(client, pid, prescriber, repeats=0)
    results: list[str] = []
    start = threading.Barrier(2)

    def dispense() -> None:
        start.wait()
        try:
            hub.resources.create("MedicationDispense", _dispense(pid, order_ref, _day(0)))
            results.append("201")
        except FhirError as error:
            results.append(str(error.status))

    threads = [threading.Thread(target=dispense) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["201", "422"]
    assert _count(client, f"MedicationDispense?prescription={order_ref}") == 1


def test_refill_request_is_addressed_decided_and_told(
    client: FlaskClient, worker: NotificationWorker, mail: MailServer
) -> None:
    pid, prescriber = _people(client)
    order_ref = _order(client, pid, prescriber, repeats=0)
    task = {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "code": {"coding": [{"system": TASK_CODES, "code": "refill-request"}]},
        "focus": {"reference": order_ref},
        "for": {"reference": pid},
        "requester": {"reference": pid},
    }
    other, _ = _people(client, "other@example.org")
    wrong = _post(client, {**task, "for": {"reference": other}})
    assert wrong.status_code == 422
    made = body(create(client, task))
    assert made["owner"] == prescriber  # addressed to the order's prescriber
    made["status"] = "rejected"
    made["statusReason"] = {"text": "Needs a review visit first"}
    decided = client.put(f"/fhir/Task/{made['id']}", json=made, headers=FHIR_JSON)
    assert decided.status_code == 200
    [email] = wait_for(lambda: mail.to("pat@example.org"), 120, "the patient's message")
    assert email.mail["Subject"] == "Your refill request"
    assert "was declined" in email.text and "Needs a review visit first" in email.text


def test_running_out_reminder_and_adherence(
    client: FlaskClient, worker: NotificationWorker, mail: MailServer
) -> None:
    pid, prescriber = _people(client)
    order_ref = _order(client, pid, prescriber, repeats=0)
    # 30 days handed over 25 days ago: the supply ends in 5 days, the 7-day reminder is due.
    assert _post(client, _dispense(pid, order_ref, _day(-25))).status_code == 201
    [email] = wait_for(lambda: mail.to("pat@example.org"), 300, "the running-out reminder")
    assert email.mail["Subject"] == "Time to refill" and _day(5) in email.text
    assert "No refills remain" in email.text
    # Long-term therapy without refills left: the prescriber hears too.
    wait_for(lambda: mail.to("dr.lind@example.org"), 300, "the prescriber's reminder")

    # PDC over the 60 days before today: the 30-day fill of day -25 covers all 25 days from
    # that first fill on; a patient with fills on days -60 and -10 has 30 + 10 of 60 days.
    start, end = _day(-60), _day(-1)
    mine = body(
        client.get(
            f"/fhir/Patient/{pid.split('/')[1]}/$medication-adherence?start={start}&end={end}"
        )
    )
    [entry] = mine["parameter"]
    parts = {
        p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in entry["part"]
    }
    assert parts["medication"] == "atorvastatin" and parts["pdc"] == 1.0
    gap, _ = _people(client, "gap@example.org")
    gap_order = _order(client, gap, prescriber, repeats=2)
    for handed in (_day(-60), _day(-10)):
        assert _post(client, _dispense(gap, gap_order, handed)).status_code == 201
    listed = body(
        client.get(f"/fhir/Patient/$medication-adherence?start={start}&end={end}&class=statin")
    )
    under = {
        next(p["valueReference"]["reference"] for p in e["part"] if p["name"] == "patient")
        for e in listed["parameter"]
    }
    assert under == {gap}  # PDC 0.67; the first patient (1.0) is not listed


def test_a_patient_requests_with_their_token_and_cannot_decide(
    auth_client: FlaskClient, auth_hub: Hub
) -> None:
    register_app(auth_hub)
    auth_hub.resources.update("Patient", "rx-pat", {"resourceType": "Patient", "id": "rx-pat"})
    doctor = {"resourceType": "Practitioner", "id": "rx-doc", "name": [{"family": "Lind"}]}
    auth_hub.resources.update("Practitioner", "rx-doc", doctor)
    stored = auth_hub.resources.create(
        "MedicationRequest",
        {
            **order("Patient/rx-pat", *ATORVASTATIN),
            "requester": {"reference": "Practitioner/rx-doc"},
        },
    )
    patient_token = auth_hub.auth.issue_direct("app", "patient/*.cruds", patient="rx-pat")
    as_patient = {**FHIR_JSON, "Authorization": f"Bearer {patient_token['access_token']}"}
    task = {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "code": {"coding": [{"system": TASK_CODES, "code": "refill-request"}]},
        "focus": {"reference": f"MedicationRequest/{stored.stored.resource_id}"},
        "for": {"reference": "Patient/rx-pat"},
    }
    made = auth_client.post("/fhir/Task", json=task, headers=as_patient)
    assert made.status_code == 201, made.get_data(as_text=True)
    requested = body(made)
    assert requested["owner"] == {"reference": "Practitioner/rx-doc"}
    self_approved = {**requested, "status": "accepted"}
    refused = auth_client.put(
        f"/fhir/Task/{requested['id']}", json=self_approved, headers=as_patient
    )
    assert refused.status_code == 403, refused.get_data(as_text=True)
    cancelled = {**requested, "status": "cancelled"}
    ok = auth_client.put(f"/fhir/Task/{requested['id']}", json=cancelled, headers=as_patient)
    assert ok.status_code == 200, ok.get_data(as_text=True)
