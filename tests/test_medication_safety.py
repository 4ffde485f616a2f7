"""Medication safety in the write path: real MedicationRequests, allergies and statements
through the REST API on the embedded database; refusals, warnings, contained DetectedIssues,
overrides (audited), updates, batches and transactions."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from fhirhub.hub import Hub
from tests.helpers import FHIR_JSON, body, create, patient
from tests.medication_support import RXNORM, SNOMED, allergy, order, statement

PREFER_OO = {**FHIR_JSON, "Prefer": "return=OperationOutcome"}


def _patient(client: FlaskClient) -> str:
    return f"Patient/{body(create(client, patient()))['id']}"


def _post(client: FlaskClient, resource: dict[str, Any], **headers: str) -> Any:
    return client.post("/fhir/MedicationRequest", json=resource, headers={**FHIR_JSON, **headers})


def _count(client: FlaskClient, query: str) -> int:
    return int(body(client.get(f"/fhir/{query}&_summary=count"))["total"])


def _issue_codes(resource: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (c["code"]["coding"][0]["code"], c["severity"])
        for c in resource.get("contained", [])
        if c["resourceType"] == "DetectedIssue"
    ]


def test_warfarin_with_an_nsaid_is_refused_and_nothing_is_written(client: FlaskClient) -> None:
    pid = _patient(client)
    create(client, order(pid, "855332", "Warfarin Sodium 5 MG Oral Tablet"))
    response = _post(client, order(pid, "310965", "Ibuprofen 200 MG Oral Tablet"))
    assert response.status_code == 422, response.get_data(as_text=True)
    outcome = body(response)
    assert outcome["resourceType"] == "OperationOutcome"
    text = " ".join(i["diagnostics"] for i in outcome["issue"])
    assert "DRG (high)" in text and "ONC high-priority" in text and "Bleeding" in text
    assert _count(client, f"MedicationRequest?subject={pid}") == 1


def test_override_with_reason_stores_order_with_mitigated_issue_and_audits(
    client: FlaskClient, hub: Hub
) -> None:
    pid = _patient(client)
    create(client, order(pid, "855332", "Warfarin Sodium 5 MG Oral Tablet"))
    response = _post(
        client,
        order(pid, "310965", "Ibuprofen 200 MG", reason="short course, INR monitored weekly"),
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    stored = body(response)
    issues = [c for c in stored["contained"] if c["resourceType"] == "DetectedIssue"]
    assert [(i["code"]["coding"][0]["code"], i["severity"]) for i in issues] == [("DRG", "high")]
    assert issues[0]["mitigation"][0]["action"]["text"] == "short course, INR monitored weekly"
    assert issues[0]["patient"] == {"reference": pid}
    assert stored["detectedIssue"] == [{"reference": f"#{issues[0]['id']}"}]
    hub.audit.flush()
    found = [e["res"] for e in hub.audit.search({"sub": "medication-safety-override"}, None, 5)]
    assert len(found) == 1 and "INR monitored weekly" in found[0]["outcomeDesc"]
    assert found[0]["entity"] == [{"what": {"reference": pid}}]


def test_an_override_without_a_reason_is_a_400(client: FlaskClient) -> None:
    pid = _patient(client)
    response = _post(client, order(pid, "310965", "Ibuprofen 200 MG", reason="  "))
    assert response.status_code == 400
    assert _count(client, f"MedicationRequest?subject={pid}") == 0


def test_penicillin_allergy_refuses_amoxicillin_and_warns_cephalosporin_cross_reactivity(
    client: FlaskClient,
) -> None:
    pid = _patient(client)
    create(client, allergy(pid, SNOMED, "91936005", "Allergy to penicillin"))
    refused = _post(client, order(pid, "308182", "Amoxicillin 250 MG Oral Capsule"))
    assert refused.status_code == 422
    assert "ALGY (high)" in refused.get_data(as_text=True)
    warned = _post(client, order(pid, "309097", "Cefuroxime 250 MG Oral Tablet"), **PREFER_OO)
    assert warned.status_code == 201, warned.get_data(as_text=True)
    issues = body(warned)["issue"]
    assert any(
        "ALGY (moderate)" in i["diagnostics"] and "cross-reactivity" in i["diagnostics"]
        for i in issues
    )


def test_refuted_or_entered_in_error_allergies_are_ignored(client: FlaskClient) -> None:
    pid = _patient(client)
    verification = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
    create(
        client,
        allergy(
            pid,
            RXNORM,
            "7980",
            "Penicillin G",
            verificationStatus={"coding": [{"system": verification, "code": "refuted"}]},
        ),
    )
    response = _post(client, order(pid, "308182", "Amoxicillin 250 MG Oral Capsule"))
    assert response.status_code == 201
    assert "contained" not in body(response)


def test_duplicate_ingredient_and_class_are_stored_as_warnings(client: FlaskClient) -> None:
    pid = _patient(client)
    create(client, statement(pid, "314231", "simvastatin 10 MG Oral Tablet"))
    same = _post(client, order(pid, "312961", "Simvastatin 20 MG Oral Tablet"))
    assert same.status_code == 201
    assert _issue_codes(body(same)) == [("DUPTHPY", "moderate")]
    pid2 = _patient(client)
    create(client, order(pid2, "259255", "Atorvastatin 80 MG Oral Tablet"))
    cls = _post(client, order(pid2, "859747", "rosuvastatin calcium 10 MG Oral Tablet"))
    assert _issue_codes(body(cls)) == [("DUPTHPY", "low")]


def test_dose_above_the_daily_maximum_is_refused(client: FlaskClient) -> None:
    pid = _patient(client)
    # 2 tablets of 500 mg acetaminophen 5 times a day = 5 g/day > 4 g
    too_much = order(
        pid, "198440", "Acetaminophen 500 MG Oral Tablet", dose=2, unit="{tbl}", per_day=5
    )
    response = _post(client, too_much)
    assert response.status_code == 422
    assert "5000 mg per day" in response.get_data(as_text=True)
    fine = order(pid, "198440", "Acetaminophen 500 MG Oral Tablet", dose=1000, per_day=3)
    assert _post(client, fine).status_code == 201


def test_daily_methotrexate_is_above_the_weekly_maximum(client: FlaskClient) -> None:
    pid = _patient(client)
    daily = order(pid, "105585", "Methotrexate 2.5 MG Oral Tablet", dose=10)
    response = _post(client, daily)
    assert response.status_code == 422
    assert "70 mg per week" in response.get_data(as_text=True)
    weekly = order(pid, "105585", "Methotrexate 2.5 MG", dose=15, period_unit="wk")
    assert _post(client, weekly).status_code == 201


def test_impossible_doses_are_422_and_not_written(client: FlaskClient) -> None:
    pid = _patient(client)
    for bad in (
        order(pid, "198440", dose=-5),
        order(pid, "198440", dose=500, per_day=0),
    ):
        response = _post(client, bad)
        assert response.status_code in (400, 422), response.get_data(as_text=True)
    assert _count(client, f"MedicationRequest?subject={pid}") == 0


def test_unknown_codes_are_stored_with_an_informational_could_not_check(
    client: FlaskClient,
) -> None:
    pid = _patient(client)
    response = _post(client, order(pid, "99999999", "Something new"), **PREFER_OO)
    assert response.status_code == 201
    issues = body(response)["issue"]
    assert any(
        i["severity"] == "information" and "could not check" in i["diagnostics"] for i in issues
    )


def test_onc_pairs_by_class(client: FlaskClient) -> None:
    pid = _patient(client)
    create(client, order(pid, "8123", "phenelzine"))  # MAO inhibitor (ingredient concept)
    response = _post(client, order(pid, "312938", "Sertraline 100 MG Oral Tablet"))
    assert response.status_code == 422
    assert "Serotonin syndrome" in response.get_data(as_text=True)
    pid2 = _patient(client)
    create(
        client, order(pid2, "105585", "Methotrexate 2.5 MG Oral Tablet", dose=15, period_unit="wk")
    )
    response = _post(client, order(pid2, "10829", "trimethoprim"))
    assert response.status_code == 422
    assert "antifolate" in response.get_data(as_text=True)


def test_update_is_rechecked_and_previous_issues_replaced(client: FlaskClient) -> None:
    pid = _patient(client)
    create(client, statement(pid, "314231", "simvastatin 10 MG"))
    stored = body(create(client, order(pid, "312961", "Simvastatin 20 MG")))
    assert _issue_codes(stored) == [("DUPTHPY", "moderate")]
    stored["status"] = "on-hold"
    again = client.put(f"/fhir/MedicationRequest/{stored['id']}", json=stored, headers=FHIR_JSON)
    assert again.status_code == 200
    assert _issue_codes(body(again)) == [("DUPTHPY", "moderate")]  # not duplicated
    stored["status"] = "completed"
    done = client.put(f"/fhir/MedicationRequest/{stored['id']}", json=stored, headers=FHIR_JSON)
    assert done.status_code == 200 and "contained" not in body(done)


def test_a_transaction_with_a_refused_order_writes_nothing(client: FlaskClient) -> None:
    pid = _patient(client)
    create(client, order(pid, "855332", "Warfarin Sodium 5 MG Oral Tablet"))
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": statement(pid, "314231"),
                "request": {"method": "POST", "url": "MedicationStatement"},
            },
            {
                "resource": order(pid, "198014", "Naproxen 500 MG Oral Tablet"),
                "request": {"method": "POST", "url": "MedicationRequest"},
            },
        ],
    }
    response = client.post("/fhir", json=bundle, headers=FHIR_JSON)
    assert response.status_code == 422, response.get_data(as_text=True)
    assert _count(client, f"MedicationStatement?subject={pid}") == 0
    assert _count(client, f"MedicationRequest?subject={pid}") == 1


def test_a_batch_checks_each_order(client: FlaskClient) -> None:
    pid = _patient(client)
    create(client, order(pid, "855332", "Warfarin Sodium 5 MG Oral Tablet"))
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {
                "resource": order(pid, "198014", "Naproxen 500 MG"),
                "request": {"method": "POST", "url": "MedicationRequest"},
            },
            {
                "resource": order(pid, "197361", "Amlodipine 5 MG Oral Tablet"),
                "request": {"method": "POST", "url": "MedicationRequest"},
            },
        ],
    }
    response = client.post("/fhir", json=bundle, headers=FHIR_JSON)
    assert response.status_code == 200
    statuses = [e["response"]["status"] for e in body(response)["entry"]]
    assert statuses[0].startswith("422") and statuses[1].startswith("201")
