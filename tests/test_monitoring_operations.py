"""Observation/$lastn and $stats over stored data, their OperationDefinitions and
CapabilityStatement entries, and their bad input."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.helpers import assert_outcome, body, create
from tests.monitoring_support import ago, vital

VITALS = "vital-signs"


def readings(client: FlaskClient) -> tuple[str, list[str]]:
    pid = body(create(client, {"resourceType": "Patient"}))["id"]
    patient = f"Patient/{pid}"
    ids = []
    for hours, hr in ((5, 70), (3, 90), (1, 80)):
        ids.append(
            body(create(client, vital(patient, "8867-4", hr, "/min", ago(hours=hours))))["id"]
        )
    # Weights in two units: 80 kg and 180 lb (81.647 kg).
    create(client, vital(patient, "29463-7", 80, "kg", ago(hours=4)))
    create(client, vital(patient, "29463-7", 180, "[lb_av]", ago(hours=2)))
    return patient, ids


def test_lastn_returns_the_latest_n_per_code(client: FlaskClient) -> None:
    patient, ids = readings(client)
    response = client.get(f"/fhir/Observation/$lastn?patient={patient}&category={VITALS}&max=2")
    assert response.status_code == 200, response.get_data(as_text=True)
    bundle = body(response)
    assert bundle["type"] == "searchset"
    codes = [e["resource"]["code"]["coding"][0]["code"] for e in bundle["entry"]]
    assert codes == ["8867-4", "8867-4", "29463-7", "29463-7"]  # heart rate has the latest
    assert [e["resource"]["id"] for e in bundle["entry"][:2]] == [ids[2], ids[1]]
    one = body(
        client.get(f"/fhir/Observation/$lastn?patient={patient}&code=http://loinc.org|8867-4")
    )
    assert [e["resource"]["id"] for e in one["entry"]] == [ids[2]]


def test_stats_per_code_with_units_combined(client: FlaskClient) -> None:
    patient, _ = readings(client)
    query = (
        f"subject={patient}&system=http://loinc.org&code=8867-4&code=29463-7&duration=24"
        "&statistic=average&statistic=maximum&statistic=count&statistic=median"
    )
    response = client.get(f"/fhir/Observation/$stats?{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    results = {
        p["resource"]["code"]["coding"][0]["code"]: {
            c["code"]["coding"][0]["code"]: c.get("valueQuantity", {}).get(
                "value", c.get("valueInteger")
            )
            for c in p["resource"]["component"]
        }
        for p in body(response)["parameter"]
    }
    assert results["8867-4"] == {"average": 80.0, "maximum": 90, "count": 3, "median": 80}
    assert results["29463-7"]["average"] == round((80 + 81.647) / 2, 4)
    assert results["29463-7"]["maximum"] == 81.647
    # POST Parameters with a period and the sources included.
    post = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "subject", "valueUri": patient},
            {"name": "coding", "valueCoding": {"system": "http://loinc.org", "code": "8867-4"}},
            {"name": "period", "valuePeriod": {"start": ago(hours=4), "end": ago(minutes=1)}},
            {"name": "statistic", "valueCode": "minimum"},
            {"name": "include", "valueBoolean": True},
        ],
    }
    answer = body(client.post("/fhir/Observation/$stats", json=post))
    names = [p["name"] for p in answer["parameter"]]
    assert names == ["statistic", "source", "source"]
    assert answer["parameter"][0]["resource"]["component"][0]["valueQuantity"]["value"] == 80


def test_bad_input_is_a_clear_400(client: FlaskClient) -> None:
    assert_outcome(client.get("/fhir/Observation/$lastn?category=vital-signs"), 400, "patient")
    assert_outcome(client.get("/fhir/Observation/$lastn?patient=Patient/x"), 400, "category")
    assert_outcome(
        client.get("/fhir/Observation/$lastn?patient=Patient/x&code=a&max=0"), 400, "max"
    )
    assert_outcome(
        client.get("/fhir/Observation/$stats?subject=Patient/x&code=a&statistic=skew"), 400, "skew"
    )
    assert_outcome(
        client.get("/fhir/Observation/$stats?subject=Patient/x&code=a"), 400, "statistic"
    )


def test_definitions_and_capability_statement(client: FlaskClient) -> None:
    for name in ("Observation-lastn", "Observation-stats"):
        definition = body(client.get(f"/fhir/OperationDefinition/{name}"))
        assert definition["base"] == f"http://hl7.org/fhir/OperationDefinition/{name}"
    statement = body(client.get("/fhir/metadata"))
    observation = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Observation")
    assert {o["name"] for o in observation["operation"]} >= {"lastn", "stats"}
