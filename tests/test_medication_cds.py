"""CDS Hooks 2.0 medication services, called as an EHR would: discovery, order-sign with
prefetch and without (fetched from this server), order-select, patient-view, feedback, and
malformed requests (jsonschema)."""

from __future__ import annotations

import uuid
from typing import Any

from flask.testing import FlaskClient

from fhirhub.hub import Hub
from tests.helpers import body, create, patient
from tests.medication_support import SNOMED, allergy, order, statement


def _bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": r} for r in resources],
    }


def _alerts(response: Any) -> list[dict[str, Any]]:
    """Cards other than the informational "could not check" ones (no dosage given here)."""
    return [c for c in body(response)["cards"] if "could not check" not in c["summary"]]


def _request(hook: str, patient_id: str, **context: Any) -> dict[str, Any]:
    return {
        "hook": hook,
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/example", "patientId": patient_id, **context},
    }


def test_discovery_lists_the_services_with_prefetch_templates(client: FlaskClient) -> None:
    response = client.get("/cds-services")
    assert response.status_code == 200
    services = {s["id"]: s for s in body(response)["services"]}
    assert services["medication-order-sign"]["hook"] == "order-sign"
    assert services["medication-order-select"]["hook"] == "order-select"
    assert "{{context.patientId}}" in services["medication-order-sign"]["prefetch"]["allergies"]


def test_order_sign_with_prefetch_finds_interaction_between_two_drafts(
    client: FlaskClient,
) -> None:
    # The spec's example shape: draftOrders is a Bundle of MedicationRequests; prefetch given.
    drafts = _bundle(
        {
            **order("Patient/p1", "855332", "Warfarin Sodium 5 MG Oral Tablet"),
            "id": "d1",
            "status": "draft",
        },
        {
            **order("Patient/p1", "198014", "Naproxen 500 MG Oral Tablet"),
            "id": "d2",
            "status": "draft",
        },
    )
    request = _request("order-sign", "p1", draftOrders=drafts)
    request["prefetch"] = {
        "patient": {"resourceType": "Patient", "id": "p1"},
        "medications": _bundle(),
        "statements": _bundle(),
        "allergies": _bundle(),
    }
    response = client.post("/cds-services/medication-order-sign", json=request)
    assert response.status_code == 200, response.get_data(as_text=True)
    cards = _alerts(response)
    assert len(cards) == 1
    card = cards[0]
    assert card["indicator"] == "critical" and "Drug Interaction" in card["summary"]
    assert card["source"]["label"] and card["overrideReasons"]
    assert card["selectionBehavior"] == "at-most-one"
    action = card["suggestions"][0]["actions"][0]
    assert action["type"] == "delete" and action["resourceId"] == ["MedicationRequest/d2"]


def test_order_sign_without_prefetch_reads_this_server(client: FlaskClient) -> None:
    pid = body(create(client, patient()))["id"]
    create(client, allergy(f"Patient/{pid}", SNOMED, "91936005", "Allergy to penicillin"))
    create(client, statement(f"Patient/{pid}", "314231", "simvastatin 10 MG"))
    drafts = _bundle(
        {**order(f"Patient/{pid}", "308182", "Amoxicillin 250 MG"), "id": "a", "status": "draft"},
        {**order(f"Patient/{pid}", "312961", "Simvastatin 20 MG"), "id": "b", "status": "draft"},
    )
    response = client.post(
        "/cds-services/medication-order-sign", json=_request("order-sign", pid, draftOrders=drafts)
    )
    cards = _alerts(response)
    summaries = sorted((c["indicator"], c["summary"].split(":")[0]) for c in cards)
    assert summaries == [("critical", "Allergy Alert"), ("warning", "Duplicate Therapy Alert")]


def test_order_select_checks_only_the_selection(client: FlaskClient) -> None:
    drafts = _bundle(
        {**order("Patient/p", "8123", "phenelzine"), "id": "m", "status": "draft"},
        {**order("Patient/p", "310385", "FLUoxetine 20 MG"), "id": "s", "status": "draft"},
    )
    request = _request("order-select", "p", draftOrders=drafts, selections=["MedicationRequest/m"])
    request["prefetch"] = {
        "medications": _bundle(),
        "statements": _bundle(),
        "allergies": _bundle(),
    }
    response = client.post("/cds-services/medication-order-select", json=request)
    assert _alerts(response) == []  # m alone: nothing earlier to clash with
    request["context"]["selections"] = ["MedicationRequest/s"]
    response = client.post("/cds-services/medication-order-select", json=request)
    assert [c["indicator"] for c in _alerts(response)] == ["critical"]


def test_patient_view_shows_an_allergy_banner(client: FlaskClient) -> None:
    pid = body(create(client, patient()))["id"]
    create(client, allergy(f"Patient/{pid}", SNOMED, "91936005", "Allergy to penicillin"))
    response = client.post(
        "/cds-services/medication-patient-view", json=_request("patient-view", pid)
    )
    cards = body(response)["cards"]
    assert cards and "Allergy to penicillin" in cards[0]["summary"]


def test_malformed_requests_are_400(client: FlaskClient) -> None:
    url = "/cds-services/medication-order-sign"
    good = _request("order-sign", "p", draftOrders=_bundle())
    for broken in (
        {k: v for k, v in good.items() if k != "hook"},
        {k: v for k, v in good.items() if k != "hookInstance"},
        {k: v for k, v in good.items() if k != "context"},
        {**good, "hook": "patient-view"},
        {**good, "context": {"userId": "x", "patientId": "p"}},  # no draftOrders
        {**good, "context": {**good["context"], "patientId": {"$ne": 1}}},
    ):
        response = client.post(url, json=broken)
        assert response.status_code == 400, (broken, response.get_data(as_text=True))
        assert body(response)["resourceType"] == "OperationOutcome"
    response = client.post(url, data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert client.post("/cds-services/nope", json=good).status_code == 404


def test_feedback_is_recorded(client: FlaskClient, hub: Hub) -> None:
    card = str(uuid.uuid4())
    feedback = {
        "feedback": [
            {
                "card": card,
                "outcome": "overridden",
                "outcomeTimestamp": "2026-12-03T10:00:00Z",
                "overrideReason": {
                    "reason": {"code": "monitored", "system": "x"},
                    "userComment": "INR next week",
                },
            }
        ]
    }
    response = client.post("/cds-services/medication-order-sign/feedback", json=feedback)
    assert response.status_code == 200
    hub.audit.flush()
    found = hub.audit.search({"sub": "cds-feedback"}, None, 5)
    assert len(found) == 1 and "INR next week" in found[0]["res"]["outcomeDesc"]
    bad = client.post(
        "/cds-services/medication-order-sign/feedback",
        json={"feedback": [{"card": card, "outcome": "maybe"}]},
    )
    assert bad.status_code == 400
