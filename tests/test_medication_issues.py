"""Standalone DetectedIssues and orders checked against each other inside one Bundle: the
worker writes each contained finding as a DetectedIssue (searchable by patient and
implicated, cancelled when the order stops), a high one emails the prescriber (a real SMTP
server on loopback, recorded as a Communication); two orders in the same transaction or
batch interact like orders on file."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from fhirhub.config import Settings
from fhirhub.hub import Hub
from fhirhub.worker.runner import NotificationWorker
from tests.helpers import FHIR_JSON, body, create, patient
from tests.medication_support import order
from tests.smtp_support import MailServer
from tests.test_notifications_support import notification_settings, wait_for

WARFARIN = ("855332", "Warfarin Sodium 5 MG Oral Tablet")
IBUPROFEN = ("310965", "Ibuprofen 200 MG Oral Tablet")


@pytest.fixture
def settings(settings: Settings, mail: MailServer) -> Settings:
    return notification_settings(
        settings, smtp_url=mail.url, smtp_from="safety@example.org", timer_poll_ms=50
    )


def _entries(client: FlaskClient, query: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in body(client.get(f"/fhir/{query}")).get("entry", [])]


def _bundle(kind: str, *orders: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [
            {"resource": o, "request": {"method": "POST", "url": "MedicationRequest"}}
            for o in orders
        ],
    }


def test_findings_become_searchable_detected_issues_and_alert_the_prescriber(
    client: FlaskClient, hub: Hub, worker: NotificationWorker, mail: MailServer
) -> None:
    pid = f"Patient/{body(create(client, patient()))['id']}"
    doctor = create(
        client,
        {
            "resourceType": "Practitioner",
            "name": [{"family": "Lind"}],
            "telecom": [{"system": "email", "value": "dr.lind@example.org"}],
        },
    )
    prescriber = {"reference": f"Practitioner/{body(doctor)['id']}"}
    warfarin = body(create(client, {**order(pid, *WARFARIN), "requester": prescriber}))
    overridden = {
        **order(pid, *IBUPROFEN, reason="3 days only, INR checked"),
        "requester": prescriber,
    }
    ibuprofen = body(create(client, overridden))
    order_ref = f"MedicationRequest/{ibuprofen['id']}"

    def issues() -> list[dict[str, Any]]:
        return _entries(client, f"DetectedIssue?patient={pid}")

    [issue] = wait_for(issues, 120, "the standalone DetectedIssue")
    assert issue["code"]["coding"][0]["code"] == "DRG" and issue["severity"] == "high"
    implicated = {r["reference"] for r in issue["implicated"]}
    assert implicated == {order_ref, f"MedicationRequest/{warfarin['id']}"}
    assert issue["mitigation"][0]["action"]["text"] == "3 days only, INR checked"
    assert _entries(client, f"DetectedIssue?implicated={order_ref}")[0]["id"] == issue["id"]
    assert _entries(client, f"DetectedIssue?implicated=MedicationRequest/{warfarin['id']}")

    wait_for(lambda: mail.to("dr.lind@example.org"), 120, "the prescriber's alert")
    [email] = mail.to("dr.lind@example.org")
    assert email.mail["Subject"] == "Medication safety alert"
    assert f"DetectedIssue/{issue['id']}" in email.text and "Ibuprofen" not in email.text
    [sent] = wait_for(
        lambda: [
            c
            for c in _entries(client, f"Communication?recipient={prescriber['reference']}")
            if {"reference": f"DetectedIssue/{issue['id']}"} in c.get("about", [])
        ],
        60,
        "the Communication",
    )
    assert sent["recipient"] == [prescriber]

    # Updating the partner order re-checks it (the interaction is now its finding too, so
    # it needs its own override) and leaves the other order's issue alone.
    current_warfarin = body(client.get(f"/fhir/MedicationRequest/{warfarin['id']}"))
    current_warfarin["extension"] = order(pid, *WARFARIN, reason="INR weekly")["extension"]
    partner = client.put(
        f"/fhir/MedicationRequest/{warfarin['id']}", json=current_warfarin, headers=FHIR_JSON
    )
    assert partner.status_code == 200, partner.get_data(as_text=True)
    wait_for(lambda: len(issues()) == 2, 120, "the partner's own DetectedIssue")
    assert body(client.get(f"/fhir/DetectedIssue/{issue['id']}"))["status"] == "final"

    # Stopping the order itself cancels its issue.
    version = body(client.get(f"/fhir/DetectedIssue/{issue['id']}"))["meta"]["versionId"]
    ibuprofen = body(client.get(f"/fhir/{order_ref}"))
    ibuprofen["status"] = "stopped"
    stopped = client.put(f"/fhir/{order_ref}", json=ibuprofen, headers=FHIR_JSON)
    assert stopped.status_code == 200

    def cancelled() -> bool:
        current = body(client.get(f"/fhir/DetectedIssue/{issue['id']}"))
        return current["status"] == "cancelled" and current["meta"]["versionId"] != version

    wait_for(cancelled, 120, "the issue to be cancelled")
    # One alert per high issue, however often the orders were re-checked.
    wait_for(lambda: len(mail.to("dr.lind@example.org")) == 2, 120, "the partner's alert")
    assert len(mail.to("dr.lind@example.org")) == 2


def test_two_orders_in_one_transaction_are_checked_against_each_other(
    client: FlaskClient,
) -> None:
    pid = f"Patient/{body(create(client, patient()))['id']}"
    refused = client.post(
        "/fhir", json=_bundle("transaction", order(pid, *WARFARIN), order(pid, *IBUPROFEN))
    )
    assert refused.status_code == 422, refused.get_data(as_text=True)
    text = " ".join(i["diagnostics"] for i in body(refused)["issue"])
    assert "DRG (high)" in text and "Warfarin" in text
    assert _entries(client, f"MedicationRequest?subject={pid}") == []
    accepted = client.post(
        "/fhir",
        json=_bundle(
            "transaction", order(pid, *WARFARIN), order(pid, *IBUPROFEN, reason="short course")
        ),
    )
    assert accepted.status_code == 200, accepted.get_data(as_text=True)
    ids = [e["response"]["location"].split("/")[1] for e in body(accepted)["entry"]]
    second = body(client.get(f"/fhir/MedicationRequest/{ids[1]}"))
    [contained] = [c for c in second["contained"] if c["resourceType"] == "DetectedIssue"]
    assert {"reference": f"MedicationRequest/{ids[0]}"} in contained["implicated"]


def test_orders_in_one_batch_are_checked_against_each_other(client: FlaskClient) -> None:
    pid = f"Patient/{body(create(client, patient()))['id']}"
    # Three or more plain creates are written together (service/batch_writes.py).
    amlodipine = order(pid, "197361", "Amlodipine 5 MG Oral Tablet")
    response = client.post(
        "/fhir",
        json=_bundle("batch", order(pid, *WARFARIN), amlodipine, order(pid, *IBUPROFEN)),
    )
    assert response.status_code == 200
    statuses = [e["response"]["status"][:3] for e in body(response)["entry"]]
    assert statuses == ["201", "201", "422"]
    [refusal] = [e["response"]["outcome"] for e in body(response)["entry"][2:]]
    assert "DRG (high)" in " ".join(i["diagnostics"] for i in refusal["issue"])
