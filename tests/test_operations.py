"""The operations registry: declared parameters, one parse path for GET and POST, errors as
OperationOutcome, OperationDefinitions served and listed in the CapabilityStatement, and
each operation's access rule applied to SMART tokens."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from fhirhub.app import create_app
from fhirhub.hub import Hub
from fhirhub.operations.model import AccessRule, Call, Operation, Parameter, Result
from tests.auth_helpers import clinical_data, register_app
from tests.helpers import FHIR_JSON, assert_outcome, body, create, patient

SEEN: list[Call] = []


def _echo(call: Call) -> dict[str, Any]:
    SEEN.append(call)
    return {
        "resourceType": "Parameters",
        "parameter": [{"name": "count", "valueInteger": len(call.all("when"))}],
    }


def _poke(call: Call) -> Result:
    return Result({"resourceType": "Parameters"}, status=201, headers={"X-Poked": "yes"})


OPERATIONS = (
    Operation(
        code="echo",
        id="patient-echo",
        title="Echo for tests",
        description="Returns what it was given.",
        handler=_echo,
        resource=("Patient",),
        levels=("type", "instance"),
        parameters=(
            Parameter("word", "string", 1, "1"),
            Parameter("n", "integer"),
            Parameter("when", "dateTime", 0, "*"),
            Parameter("who", "Reference"),
            Parameter("code", "string", search_type="token"),
            Parameter("person", "Patient"),
            Parameter("count", "integer", use="out"),
        ),
        access=AccessRule(types=("Patient",), instance_read=True),
    ),
    Operation(
        code="poke",
        id="poke",
        title="Poke",
        description="Changes state.",
        handler=_poke,
        levels=("system",),
        affects_state=True,
        access=AccessRule(admin=True),
    ),
)


def _register(hub: Hub) -> None:
    for operation in OPERATIONS:
        hub.operations.register(operation)


@pytest.fixture
def client(hub: Hub) -> FlaskClient:
    _register(hub)
    SEEN.clear()
    return create_app(hub.settings, hub).test_client()


def test_get_and_post_parse_the_same_way(client: FlaskClient) -> None:
    response = client.get(
        "/fhir/Patient/$echo?word=hi&n=3&when=2024-01-01T10:00:00Z&when=2024-01-02&who=Patient/x"
        "&code=http://loinc.org|1234-5"
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert body(response)["parameter"][0]["valueInteger"] == 2
    by_get = SEEN[-1].params
    post = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "word", "valueString": "hi"},
            {"name": "n", "valueInteger": 3},
            {"name": "when", "valueDateTime": "2024-01-01T10:00:00Z"},
            {"name": "when", "valueDateTime": "2024-01-02"},
            {"name": "who", "valueReference": {"reference": "Patient/x"}},
            {"name": "code", "valueString": "http://loinc.org|1234-5"},
        ],
    }
    response = client.post("/fhir/Patient/$echo", json=post, headers=FHIR_JSON)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert SEEN[-1].params == by_get
    assert SEEN[-1].one("n") == 3 and SEEN[-1].method == "POST"


def test_resources_only_in_a_body(client: FlaskClient) -> None:
    given = patient()
    post = {
        "resourceType": "Parameters",
        "parameter": [{"name": "word", "valueString": "x"}, {"name": "person", "resource": given}],
    }
    response = client.post("/fhir/Patient/$echo", json=post, headers=FHIR_JSON)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert SEEN[-1].one("person")["name"] == given["name"]
    assert_outcome(client.get("/fhir/Patient/$echo?word=x&person=1"), 400, "cannot be given")


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("", "'word': is required"),
        ("word=a&word=b", "at most 1"),
        ("word=a&bogus=1", "'bogus': is not a parameter of $echo"),
        ("word=a&n=three", "must be an integer"),
        ("word=a&when=yesterday", "'when'"),
        ("word=", "is empty"),
    ],
)
def test_bad_query_parameters_are_400(client: FlaskClient, query: str, fragment: str) -> None:
    assert_outcome(client.get(f"/fhir/Patient/$echo?{query}"), 400, fragment)
    assert not SEEN


@pytest.mark.parametrize(
    ("parameter", "fragment"),
    [
        ({"name": "n", "valueString": "3"}, "valueInteger"),
        ({"name": "when", "valueDateTime": "2024-13-45"}, "not a valid dateTime"),
        (
            {"name": "person", "resource": {"resourceType": "Observation", "status": "final"}},
            "code: required",
        ),
        (
            {
                "name": "person",
                "resource": {"resourceType": "Basic", "code": {"text": "not a patient"}},
            },
            "must be a Patient",
        ),
        ({"name": "who", "valueReference": {"display": "x"}}, "needs a reference"),
        ({"valueString": "nameless"}, "name"),
    ],
)
def test_bad_parameters_bodies_are_400(
    client: FlaskClient, parameter: dict[str, Any], fragment: str
) -> None:
    post = {"resourceType": "Parameters", "parameter": [{"name": "word", "valueString": "w"}]}
    post["parameter"].append(parameter)
    response = client.post("/fhir/Patient/$echo", json=post, headers=FHIR_JSON)
    assert_outcome(response, 400, fragment)
    assert not SEEN


def test_non_parameters_body_and_malformed_json(client: FlaskClient) -> None:
    response = client.post("/fhir/Patient/$echo", json=patient(), headers=FHIR_JSON)
    assert_outcome(response, 400, "takes a Parameters resource")
    response = client.post("/fhir/Patient/$echo", data=b"{nope", headers=FHIR_JSON)
    assert_outcome(response, 400)


def test_instance_level_and_state_changing_operations(client: FlaskClient) -> None:
    pid = body(create(client, patient()))["id"]
    assert client.get(f"/fhir/Patient/{pid}/$echo?word=x").status_code == 200
    assert SEEN[-1].resource_id == pid and SEEN[-1].resource_type == "Patient"
    assert_outcome(client.get("/fhir/$poke"), 405, "use POST")
    response = client.post("/fhir/$poke")
    assert response.status_code == 201 and response.headers["X-Poked"] == "yes"
    # Not registered for Observation: read as an id, which "$echo" cannot be.
    assert_outcome(client.get("/fhir/Observation/$echo?word=x"), 400, "invalid id")


def test_definitions_served_and_listed(client: FlaskClient) -> None:
    definition = body(client.get("/fhir/OperationDefinition/patient-echo"))
    assert definition["resourceType"] == "OperationDefinition"
    assert definition["code"] == "echo" and definition["resource"] == ["Patient"]
    assert definition["type"] is True and definition["instance"] is True
    assert definition["system"] is False and definition["affectsState"] is False
    word = next(p for p in definition["parameter"] if p["name"] == "word")
    assert (word["min"], word["max"], word["type"]) == (1, "1", "string")
    token = next(p for p in definition["parameter"] if p["name"] == "code")
    assert token["searchType"] == "token"
    # The generated definitions are valid R4 OperationDefinitions.
    response = client.post("/fhir/OperationDefinition/$validate", json=definition)
    issues = body(response)["issue"]
    assert all(i["severity"] not in ("error", "fatal") for i in issues), issues
    found = body(client.get("/fhir/OperationDefinition?code=echo"))
    assert [e["resource"]["id"] for e in found["entry"]] == ["patient-echo"]
    assert_outcome(client.get("/fhir/OperationDefinition/nothing-here"), 404)
    statement = body(client.get("/fhir/metadata"))
    rest = statement["rest"][0]
    patient_support = next(r for r in rest["resource"] if r["type"] == "Patient")
    assert {"name": "echo", "definition": definition["url"]} in patient_support["operation"]
    assert "poke" in [o["name"] for o in rest["operation"]]


def test_access_rules_for_tokens(auth_hub: Hub) -> None:
    _register(auth_hub)
    client = create_app(auth_hub.settings, auth_hub).test_client()
    register_app(auth_hub)
    clinical_data(auth_hub)

    def token(scope: str, **kw: Any) -> dict[str, str]:
        issued = auth_hub.auth.issue_direct("app", scope, **kw)["access_token"]
        return {"Authorization": f"Bearer {issued}"}

    alice = token("patient/Patient.rs", patient="a")
    assert client.get("/fhir/Patient/$echo?word=x", headers=alice).status_code == 200
    # Instance level: the instance must be readable; another patient's is hidden (404).
    assert client.get("/fhir/Patient/a/$echo?word=x", headers=alice).status_code == 200
    assert_outcome(client.get("/fhir/Patient/b/$echo?word=x", headers=alice), 404)
    no_scope = token("patient/Observation.rs", patient="a")
    assert_outcome(client.get("/fhir/Patient/$echo?word=x", headers=no_scope), 403)
    assert_outcome(client.post("/fhir/$poke", headers=alice), 403, "admin")
    assert_outcome(client.get("/fhir/Patient/$echo?word=x"), 401)
    definition = client.get("/fhir/OperationDefinition/patient-echo", headers=no_scope)
    assert definition.status_code == 200
