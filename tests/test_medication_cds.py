"""CDS Hooks 2.0 medication services, called as an EHR would: discovery, order-sign with
and without prefetch (then read from this server), interactions between two drafts,
order-select selections, malformed requests, a foreign fhirServer without prefetch, and
feedback."""

from __future__ import annotations

import uuid
from typing import Any

from flask.testing import FlaskClient

from tests.helpers import body, create, patient
from tests.medication_support import RXNORM, SNOMED, allergy, order


def _patient_id(client: FlaskClient) -> str:
    return str(body(create(client, patient()))["id"])


def _bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": r} for r in resources],
    }


def _request(hook: str, pid: str, drafts: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """A request shaped like the spec's order-sign example (cds-hooks.hl7.org/2.0)."""
    return {
        "hookInstance": str(uuid.uuid4()),
        "fhirServer": "http://testserver/fhir",
        "hook": hook,
        "context": {
            "userId": "Practitioner/example",
            "patientId": pid,
            "draftOrders": _bundle(*drafts),
        },
        **extra,
    }


def _draft(pid: str, draft_id: str, code: str, display: str) -> dict[str, Any]:
    return {**order(f"Patient/{pid}", code, display, status="draft"), "id": draft_id}


def test_discovery_lists_the_services_with_prefetch(client: FlaskClient) -> None:
    services = client.get("/cds-services").get_json()["services"]
    by_hook = {s["hook"]: s for s in services}
    assert {"order-sign", "order-select", "patient-view"} <= set(by_hook)
    assert by_hook["order-sign"]["prefetch"]["allergies"].endswith("{{context.patientId}}")


def test_order_sign_reads_the_server_when_prefetch_is_missing(client: FlaskClient) -> None:
    pid = _patient_id(client)
    create(client, order(f"Patient/{pid}", "855332", "Warfarin Sodium 5 MG Oral Tablet"))
    draft = _draft(pid, "d1", "310965", "Ibuprofen 200 MG Oral Tablet")
    response = client.post(
        "/cds-services/medication-order-sign", json=_request("order-sign", pid, [draft])
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    cards = response.get_json()["cards"]
    critical = [c for c in cards if c["indicator"] == "critical"]
    assert critical, cards
    assert "bleeding" in (critical[0]["detail"] + critical[0]["summary"]).lower()
    assert critical[0]["source"]["label"] and critical[0]["overrideReasons"]


def test_order_sign_with_prefetch_allergy_class_and_two_interacting_drafts(
    client: FlaskClient,
) -> None:
    pid = _patient_id(client)
    penicillin = {**allergy(f"Patient/{pid}", RXNORM, "7984", "penicillin V"), "id": "a1"}
    drafts = [
        _draft(pid, "d1", "308182", "Amoxicillin 250 MG Oral Capsule"),
        _draft(pid, "d2", "855332", "Warfarin Sodium 5 MG Oral Tablet"),
        _draft(pid, "d3", "198014", "Naproxen 500 MG Oral Tablet"),
    ]
    prefetch = {"allergies": _bundle(penicillin), "medications": _bundle(), "statements": _bundle()}
    response = client.post(
        "/cds-services/medication-order-sign",
        json=_request("order-sign", pid, drafts, prefetch=prefetch),
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    cards = response.get_json()["cards"]
    text = " ".join(c["summary"] + " " + c.get("detail", "") for c in cards).lower()
    assert "amoxicillin" in text and "naproxen" in text
    assert len([c for c in cards if c["indicator"] == "critical"]) >= 2  # allergy + DDI


def test_order_select_checks_only_the_selected_draft(client: FlaskClient) -> None:
    pid = _patient_id(client)
    drafts = [
        _draft(pid, "d2", "855332", "Warfarin Sodium 5 MG Oral Tablet"),
        _draft(pid, "d3", "198014", "Naproxen 500 MG Oral Tablet"),
    ]
    request = _request("order-select", pid, drafts)
    request["context"]["selections"] = ["MedicationRequest/d2"]
    cards = client.post("/cds-services/medication-order-select", json=request).get_json()["cards"]
    assert not [c for c in cards if c["indicator"] == "critical"]
    request["context"]["selections"] = ["MedicationRequest/d3"]
    cards = client.post("/cds-services/medication-order-select", json=request).get_json()["cards"]
    assert [c for c in cards if c["indicator"] == "critical"]


def test_malformed_requests_are_400_and_unknown_service_404(client: FlaskClient) -> None:
    pid = _patient_id(client)
    good = _request("order-sign", pid, [])
    for broken in (
        {k: v for k, v in good.items() if k != "hookInstance"},
        {k: v for k, v in good.items() if k != "context"},
        {k: v for k, v in good.items() if k != "hook"},
        {**good, "context": {**good["context"], "patientId": {"$ne": 1}}},
    ):
        response = client.post("/cds-services/medication-order-sign", json=broken)
        assert response.status_code == 400, broken
    assert client.post("/cds-services/medication-order-sign", data="{not json").status_code == 400
    assert client.post("/cds-services/nope", json=good).status_code == 404


def test_foreign_fhir_server_without_prefetch_is_412(client: FlaskClient) -> None:
    pid = _patient_id(client)
    request = _request("order-sign", pid, [_draft(pid, "d1", "310965", "Ibuprofen")])
    request["fhirServer"] = "https://ehr.example.org/fhir"
    assert client.post("/cds-services/medication-order-sign", json=request).status_code == 412


def test_feedback_is_recorded(client: FlaskClient) -> None:
    feedback = {
        "feedback": [
            {
                "card": str(uuid.uuid4()),
                "outcome": "overridden",
                "outcomeTimestamp": "2026-12-04T00:00:00Z",
                "overrideReason": {"reason": {"code": "monitored"}, "userComment": "INR weekly"},
            }
        ]
    }
    response = client.post("/cds-services/medication-order-sign/feedback", json=feedback)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert (
        client.post("/cds-services/medication-order-sign/feedback", json={"x": 1}).status_code
        == 400
    )


def test_patient_view_shows_an_allergy_banner(client: FlaskClient) -> None:
    pid = _patient_id(client)
    create(client, allergy(f"Patient/{pid}", SNOMED, "91936005", "Allergy to penicillin"))
    request = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/example", "patientId": pid},
    }
    response = client.post("/cds-services/medication-patient-view", json=request)
    assert response.status_code == 200, response.get_data(as_text=True)
    cards = body(response)["cards"]
    assert cards and "Allergy to penicillin" in cards[0]["summary"]
