"""Search parameter types, modifiers, prefixes, chaining, _has, includes and paging."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient

from tests.helpers import FHIR_JSON, assert_outcome, body

LOINC = "http://loinc.org"


def put(client: FlaskClient, resource: dict[str, Any]) -> None:
    url = f"/fhir/{resource['resourceType']}/{resource['id']}"
    response = client.put(url, json=resource, headers=FHIR_JSON)
    assert response.status_code in (200, 201), response.get_data(as_text=True)


def ids(client: FlaskClient, url: str) -> list[str]:
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)
    return sorted(
        e["resource"]["id"] for e in body(response)["entry"] if e["search"]["mode"] == "match"
    )


def obs(oid: str, patient: str, code: str, value: float, when: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
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
        "code": {
            "coding": [{"system": LOINC, "code": code, "display": f"Code {code}"}],
            "text": f"Measurement {code}",
        },
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": when,
        "valueQuantity": {
            "value": value,
            "unit": "mmHg",
            "system": "http://unitsofmeasure.org",
            "code": "mm[Hg]",
        },
        **extra,
    }


@pytest.fixture
def data(client: FlaskClient) -> None:
    put(client, {"resourceType": "Organization", "id": "org1", "name": "Général Hospital"})
    put(
        client,
        {
            "resourceType": "Practitioner",
            "id": "dr1",
            "name": [{"family": "House"}],
            "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "111"}],
        },
    )
    put(
        client,
        {
            "resourceType": "Patient",
            "id": "p1",
            "gender": "female",
            "birthDate": "1980-05-17",
            "name": [{"family": "Zoë", "given": ["Ann"]}],
            "identifier": [
                {
                    "system": "urn:mrn",
                    "value": "A1",
                    "type": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                                "code": "MR",
                            }
                        ]
                    },
                }
            ],
            "managingOrganization": {"reference": "Organization/org1"},
            "generalPractitioner": [{"reference": "Practitioner/dr1"}],
        },
    )
    put(
        client,
        {
            "resourceType": "Patient",
            "id": "p2",
            "gender": "male",
            "birthDate": "1975",
            "name": [{"family": "Smith", "given": ["Bob"]}],
            "identifier": [{"system": "urn:mrn", "value": "B2"}],
        },
    )
    put(
        client,
        {
            "resourceType": "Patient",
            "id": "p3",
            "gender": "other",
            "name": [{"family": "Smithson"}],
            "active": True,
        },
    )
    put(client, obs("o1", "p1", "8480-6", 120, "2021-03-04T10:00:00Z"))
    put(
        client,
        obs(
            "o2",
            "p1",
            "8480-6",
            145.5,
            "2022-06-01T09:30:00Z",
            performer=[{"reference": "Practitioner/dr1"}],
        ),
    )
    put(client, obs("o3", "p2", "8462-4", 80, "2022-06-15"))


pytestmark = pytest.mark.usefixtures("data")


def test_string_is_prefix_case_and_accent_insensitive(client: FlaskClient) -> None:
    assert ids(client, "/fhir/Patient?name=smith") == ["p2", "p3"]
    assert ids(client, "/fhir/Patient?family=zoe") == ["p1"]
    assert ids(client, "/fhir/Patient?name:exact=Smith") == ["p2"]
    assert ids(client, "/fhir/Patient?name:contains=ITHS") == ["p3"]
    assert ids(client, "/fhir/Organization?name=general") == ["org1"]


def test_token_forms(client: FlaskClient) -> None:
    assert ids(client, "/fhir/Patient?gender=female") == ["p1"]
    assert ids(client, "/fhir/Patient?gender=female,male") == ["p1", "p2"]
    assert ids(client, "/fhir/Patient?gender:not=female") == ["p2", "p3"]
    assert ids(client, "/fhir/Patient?identifier=urn:mrn|A1") == ["p1"]
    assert ids(client, "/fhir/Patient?identifier=urn:mrn|") == ["p1", "p2"]
    assert ids(client, "/fhir/Patient?identifier=B2") == ["p2"]
    assert ids(client, "/fhir/Patient?identifier=|B2") == []
    of_type = "http://terminology.hl7.org/CodeSystem/v2-0203|MR|A1"
    assert ids(client, f"/fhir/Patient?identifier:of-type={of_type}") == ["p1"]
    assert ids(client, "/fhir/Observation?code:text=measurement 8480") == ["o1", "o2"]
    assert ids(client, f"/fhir/Observation?code={LOINC}|8462-4") == ["o3"]
    assert ids(client, "/fhir/Patient?active=true") == ["p3"]
    assert ids(client, "/fhir/Patient?_id=p1,p3") == ["p1", "p3"]


def test_reference_forms(client: FlaskClient) -> None:
    assert ids(client, "/fhir/Observation?subject=Patient/p1") == ["o1", "o2"]
    assert ids(client, "/fhir/Observation?subject=p1") == ["o1", "o2"]
    assert ids(client, "/fhir/Observation?subject:Patient=p2") == ["o3"]
    assert ids(client, "/fhir/Observation?patient=http://testserver/fhir/Patient/p2") == ["o3"]
    assert ids(client, "/fhir/Observation?performer:missing=true") == ["o1", "o3"]


def test_date_prefixes_and_precision(client: FlaskClient) -> None:
    assert ids(client, "/fhir/Observation?date=2022") == ["o2", "o3"]
    assert ids(client, "/fhir/Observation?date=2022-06-01") == ["o2"]
    assert ids(client, "/fhir/Observation?date=lt2022") == ["o1"]
    assert ids(client, "/fhir/Observation?date=ge2022-06-02") == ["o3"]
    assert ids(client, "/fhir/Observation?date=ge2022-06-01&date=le2022-06-30") == ["o2", "o3"]
    assert ids(client, "/fhir/Observation?date=ne2022") == ["o1"]
    assert ids(client, "/fhir/Observation?date=sa2021-12-31") == ["o2", "o3"]
    assert ids(client, "/fhir/Observation?date=eb2022") == ["o1"]
    assert ids(client, "/fhir/Patient?birthdate=1975-03-01") == []  # 1975 is not within a day
    assert ids(client, "/fhir/Patient?birthdate=1975") == ["p2"]
    assert ids(client, "/fhir/Patient?birthdate=ap1981-01-01") == ["p1"]  # +-10% of the distance
    assert ids(client, "/fhir/Patient?_lastUpdated=gt2000-01-01") == ["p1", "p2", "p3"]
    assert_outcome(client.get("/fhir/Observation?date=yesterday"), 400, "date")


def test_quantity_and_number(client: FlaskClient) -> None:
    assert ids(client, "/fhir/Observation?value-quantity=120") == ["o1"]
    assert ids(client, "/fhir/Observation?value-quantity=gt100") == ["o1", "o2"]
    assert ids(
        client, "/fhir/Observation?value-quantity=145.5|http://unitsofmeasure.org|mm[Hg]"
    ) == ["o2"]
    assert ids(client, "/fhir/Observation?value-quantity=le80||mm[Hg]") == ["o3"]
    assert ids(client, "/fhir/Observation?value-quantity=120|http://unitsofmeasure.org|kg") == []
    code_value = f"{LOINC}|8480-6$120"
    assert ids(client, f"/fhir/Observation?code-value-quantity={code_value}") == ["o1"]


def test_chaining_and_has(client: FlaskClient) -> None:
    assert ids(client, "/fhir/Observation?subject:Patient.gender=male") == ["o3"]
    assert ids(client, "/fhir/Observation?patient.name=zoe") == ["o1", "o2"]
    org = "/fhir/Observation?subject:Patient.organization.name=general"
    assert ids(client, org) == ["o1", "o2"]
    assert ids(client, f"/fhir/Patient?_has:Observation:patient:code={LOINC}|8462-4") == ["p2"]
    assert ids(client, "/fhir/Patient?_has:Observation:patient:performer=dr1") == ["p1"]
    assert_outcome(client.get("/fhir/Observation?subject.name=x"), 400, "ambiguous")


def test_include_revinclude_and_iterate(client: FlaskClient) -> None:
    bundle = body(client.get("/fhir/Observation?_id=o2&_include=Observation:performer"))
    modes = sorted((e["resource"]["resourceType"], e["search"]["mode"]) for e in bundle["entry"])
    assert modes == [("Observation", "match"), ("Practitioner", "include")]
    bundle = body(client.get("/fhir/Patient?_id=p1&_revinclude=Observation:subject"))
    assert sorted(e["resource"]["id"] for e in bundle["entry"]) == ["o1", "o2", "p1"]
    url = (
        "/fhir/Observation?_id=o1&_include=Observation:subject"
        "&_include:iterate=Patient:organization"
    )
    bundle = body(client.get(url))
    assert sorted(e["resource"]["id"] for e in bundle["entry"]) == ["o1", "org1", "p1"]
    bundle = body(client.get("/fhir/Patient?_id=p1&_include=*"))
    assert {"dr1", "org1"} <= {e["resource"]["id"] for e in bundle["entry"]}


def test_sort_count_and_links(client: FlaskClient) -> None:
    bundle = body(client.get("/fhir/Observation?_sort=-date&_count=2"))
    assert [e["resource"]["id"] for e in bundle["entry"]] == ["o3", "o2"]
    next_url = next(lk["url"] for lk in bundle["link"] if lk["relation"] == "next")
    page = body(client.get(urlsplit(next_url).path + "?" + urlsplit(next_url).query))
    assert [e["resource"]["id"] for e in page["entry"]] == ["o1"]
    assert [
        e["resource"]["id"]
        for e in body(client.get("/fhir/Patient?_sort=family,-birthdate"))["entry"]
    ] == ["p2", "p3", "p1"]
    assert body(client.get("/fhir/Observation?_summary=count"))["total"] == 3
    assert body(client.get("/fhir/Observation?_total=accurate&_count=1"))["total"] == 3


def test_keyset_paging_survives_inserts(client: FlaskClient) -> None:
    first = body(client.get("/fhir/Patient?_count=2"))
    seen = [e["resource"]["id"] for e in first["entry"]]
    put(client, {"resourceType": "Patient", "id": "a0"})  # sorts before everything seen
    next_url = next(lk["url"] for lk in first["link"] if lk["relation"] == "next")
    parts = urlsplit(next_url)
    second = body(client.get(f"{parts.path}?{parts.query}"))
    seen += [e["resource"]["id"] for e in second["entry"]]
    assert seen == ["p1", "p2", "p3"]
    previous = next(lk["url"] for lk in second["link"] if lk["relation"] == "previous")
    parts = urlsplit(previous)
    back = body(client.get(f"{parts.path}?{parts.query}"))
    assert [e["resource"]["id"] for e in back["entry"]] == ["p1", "p2"]


def test_post_search_and_compartment(client: FlaskClient) -> None:
    response = client.post("/fhir/Observation/_search", data={"code": "8480-6"})
    assert sorted(e["resource"]["id"] for e in body(response)["entry"]) == ["o1", "o2"]
    assert ids(client, "/fhir/Patient/p1/Observation") == ["o1", "o2"]
    assert ids(client, "/fhir/Patient/p1/Observation?date=2021") == ["o1"]
    everything = body(client.get("/fhir/Patient/p1/$everything"))
    got = sorted((e["resource"]["resourceType"], e["resource"]["id"]) for e in everything["entry"])
    assert got == [
        ("Observation", "o1"),
        ("Observation", "o2"),
        ("Organization", "org1"),
        ("Patient", "p1"),
        ("Practitioner", "dr1"),
    ]
    typed = body(client.get("/fhir/Patient/p1/$everything?_type=Observation"))
    assert {e["resource"]["resourceType"] for e in typed["entry"]} == {"Observation"}


def test_unknown_parameters(client: FlaskClient) -> None:
    bundle = body(client.get("/fhir/Patient?gender=male&shoe-size=9"))
    assert [e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "match"] == [
        "p2"
    ]
    outcome = bundle["entry"][-1]
    assert outcome["search"]["mode"] == "outcome"
    assert "shoe-size" in outcome["resource"]["issue"][0]["diagnostics"]
    strict = client.get("/fhir/Patient?shoe-size=9", headers={"Prefer": "handling=strict"})
    assert_outcome(strict, 400, "shoe-size")
    assert_outcome(client.get("/fhir/Patient?gender:exact=x"), 400, "modifier")
    assert_outcome(client.get("/fhir/Patient?_sort=shoe-size"), 400, "sort")
    assert_outcome(client.get("/fhir/Spaceship?x=1"), 404)


def test_injection_attempts_stay_values(client: FlaskClient) -> None:
    assert_outcome(
        client.get("/fhir/Patient?name[$ne]=x", headers={"Prefer": "handling=strict"}), 400
    )
    assert ids(client, "/fhir/Patient?name[$ne]=x") == ["p1", "p2", "p3"]  # ignored, warned
    assert_outcome(client.get("/fhir/Patient?_sort=$where"), 400)
    assert ids(client, "/fhir/Patient?name:contains=.*") == []
    assert ids(client, "/fhir/Patient?name=(a|b)") == []
    assert ids(client, '/fhir/Patient?gender={"$ne":null}') == []
    assert ids(client, "/fhir/Patient?_id=$where") == []


def test_posted_search_parameter_takes_effect_and_reindexes(client: FlaskClient) -> None:
    from fhirhub.hub import Hub

    hub: Hub = client.application.extensions["fhirhub"]
    eye = "http://example.org/fhir/StructureDefinition/eye-colour"
    put(
        client,
        {
            "resourceType": "Patient",
            "id": "e1",
            "extension": [{"url": eye, "valueString": "green"}],
        },
    )
    parameter = {
        "resourceType": "SearchParameter",
        "id": "eye",
        "url": "http://example.org/sp/eye",
        "name": "eye",
        "status": "active",
        "description": "Eye colour",
        "code": "eye-colour",
        "base": ["Patient"],
        "type": "string",
        "expression": f"Patient.extension('{eye}')",
    }
    put(client, parameter)
    hub.custom_parameters.force()
    put(
        client,
        {
            "resourceType": "Patient",
            "id": "e2",
            "extension": [{"url": eye, "valueString": "Green-grey"}],
        },
    )
    assert ids(client, "/fhir/Patient?eye-colour=green") == ["e2"]  # e1 predates it
    assert hub.store.reindex("Patient", hub.extractor.extract) >= 1
    assert ids(client, "/fhir/Patient?eye-colour=green") == ["e1", "e2"]
