"""FHIRPath Patch: the pure module, then PATCH and transaction entries through the app."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from fhirhub.fhir.definitions import Definitions
from fhirhub.fhir.errors import BadRequest, FhirError, Unprocessable
from fhirhub.fhir.fhirpath_locate import evaluate
from fhirhub.fhir.fhirpath_patch import apply_patch, repeats_from
from fhirhub.fhir.validation.model import ModelRegistry
from tests.helpers import FHIR_JSON, assert_outcome, body, patient

MRN = "http://hospital.example/mrn"


def op(kind: str, path: str, **parts: Any) -> dict[str, Any]:
    """One `operation` parameter; a dict value given as `value` becomes `part` children."""
    out: list[dict[str, Any]] = [
        {"name": "type", "valueCode": kind},
        {"name": "path", "valueString": path},
    ]
    for name, value in parts.items():
        if name == "name":
            out.append({"name": "name", "valueString": value})
        elif name in ("index", "source", "destination"):
            out.append({"name": name, "valueInteger": value})
        elif name == "parts":
            out.append({"name": "value", "part": value})
        else:  # valueString=..., valueCodeableConcept=...
            out.append({"name": "value", name: value})
    return {"name": "operation", "part": out}


def params(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": list(operations)}


def sample() -> dict[str, Any]:
    return {
        **patient(id="p"),
        "identifier": [
            {"system": MRN, "value": "1"},
            {"system": "http://other", "value": "2"},
        ],
        "extension": [{"url": "http://ext/a", "valueString": "x"}],
    }


def patched(*operations: dict[str, Any]) -> dict[str, Any]:
    return apply_patch(sample(), params(*operations))


# -- the pure module -----------------------------------------------------------------------


def test_replace_primitive_and_complex() -> None:
    assert patched(op("replace", "Patient.gender", valueCode="female"))["gender"] == "female"
    result = patched(op("replace", "Patient.name[0].given[1]", valueString="Jim"))
    assert result["name"][0]["given"] == ["Peter", "Jim"]
    ident = {"system": MRN, "value": "9"}
    result = patched(
        op("replace", f"Patient.identifier.where(system='{MRN}')", valueIdentifier=ident)
    )
    assert result["identifier"][0] == ident
    assert sample()["gender"] == "male"  # the input is never changed


def test_add_appends_or_creates() -> None:
    result = patched(op("add", "Patient.name[0]", name="given", valueString="Jr"))
    assert result["name"][0]["given"] == ["Peter", "James", "Jr"]
    assert patched(op("add", "Patient", name="active", valueBoolean=True))["active"] is True
    # An anonymous type built from parts; a repeating element starts a list.
    parts = [{"name": "system", "valueUri": "phone"}, {"name": "value", "valueString": "555"}]
    result = apply_patch(
        sample(),
        params(op("add", "Patient", name="telecom", parts=parts)),
        lambda keys: tuple(keys) == ("telecom",),
    )
    assert result["telecom"] == [{"system": "phone", "value": "555"}]


def test_add_uses_model_cardinality(definitions: Definitions) -> None:
    repeats = repeats_from(ModelRegistry(definitions), "Patient")
    assert repeats(["name", "given"]) and repeats(["identifier"])
    assert not repeats(["gender"]) and not repeats(["name", "family"])
    assert not repeats(["contact", "name"]) and repeats(["contact", "telecom"])


def test_insert_and_move() -> None:
    new = {"system": "http://new", "value": "3"}
    result = patched(op("insert", "Patient.identifier", index=1, valueIdentifier=new))
    assert [i["value"] for i in result["identifier"]] == ["1", "3", "2"]
    result = patched(op("insert", "Patient.telecom", index=0, valueContactPoint={"value": "5"}))
    assert result["telecom"] == [{"value": "5"}]
    result = patched(op("move", "Patient.identifier", source=0, destination=1))
    assert [i["value"] for i in result["identifier"]] == ["2", "1"]


def test_delete() -> None:
    result = patched(op("delete", "Patient.identifier.where(system='http://other')"))
    assert [i["value"] for i in result["identifier"]] == ["1"]
    result = patched(op("delete", "Patient.extension('http://ext/a')"))
    assert "extension" not in result  # no empty arrays left behind
    assert "birthDate" not in patched(op("delete", "Patient.birthDate"))
    assert patched(op("delete", "Patient.deceasedBoolean")) == sample()  # nothing: a no-op


def test_first_last_and_operations_in_order() -> None:
    result = patched(
        op("replace", "Patient.identifier.last().value", valueString="L"),
        op("replace", "Patient.identifier.first().value", valueString="F"),
        op("delete", "Patient.name.given[0]"),
    )
    assert [i["value"] for i in result["identifier"]] == ["F", "L"]
    assert result["name"][0]["given"] == ["James"]
    nodes = evaluate(sample(), "Patient.identifier.where(value = '2').system")
    assert [n.value(sample()) for n in nodes] == ["http://other"]


@pytest.mark.parametrize(
    ("operation", "error", "fragment"),
    [
        (op("replace", "Patient.identifier.value", valueString="x"), Unprocessable, "2 elements"),
        (op("replace", "Patient.active", valueBoolean=True), Unprocessable, "0 elements"),
        (op("replace", "Patient.name.exists()", valueBoolean=True), Unprocessable, "unsupported"),
        (op("replace", "Patient.name | Patient.x", valueString="x"), Unprocessable, "unsupported"),
        (op("replace", "Observation.status", valueCode="final"), Unprocessable, "start with"),
        (op("add", "Patient", name="gender", valueCode="female"), Unprocessable, "replace"),
        (op("insert", "Patient.identifier", index=5, valueString="x"), Unprocessable, "past"),
        (op("move", "Patient.identifier", source=0, destination=2), Unprocessable, "range"),
        (op("replace", "Patient.id", valueId="other"), Unprocessable, "resourceType or id"),
        (op("delete", "Patient"), Unprocessable, "itself"),
        (op("delete", "Patient.identifier"), Unprocessable, "2 elements"),
        (op("upsert", "Patient.gender"), BadRequest, "type must be"),
        (op("replace", "Patient.gender"), BadRequest, "needs 'value'"),
        (op("add", "Patient", valueString="x"), BadRequest, "needs 'name'"),
        (op("insert", "Patient.identifier", index=-1, valueString="x"), BadRequest, "integer"),
        ({"name": "op", "part": []}, BadRequest, "named 'operation'"),
    ],
)
def test_errors(operation: dict[str, Any], error: type[FhirError], fragment: str) -> None:
    with pytest.raises(error) as caught:
        patched(operation)
    assert fragment in caught.value.diagnostics
    assert type(caught.value) is error


def test_malformed_parameters() -> None:
    bad: Any
    for bad in ([], {"resourceType": "Patient"}, {"resourceType": "Parameters"}):
        with pytest.raises(BadRequest):
            apply_patch(sample(), bad)


# -- through the app -----------------------------------------------------------------------

PATCH_HEADERS = {**FHIR_JSON, "If-Match": 'W/"1"'}


def put_sample(client: FlaskClient) -> None:
    response = client.put("/fhir/Patient/p", json=sample(), headers=FHIR_JSON)
    assert response.status_code == 201, response.get_data(as_text=True)


def test_patch_interaction(client: FlaskClient) -> None:
    put_sample(client)
    body_ = params(
        op("replace", "Patient.gender", valueCode="female"),
        op("add", "Patient.name[0]", name="given", valueString="Jr"),
        op("add", "Patient", name="telecom", valueContactPoint={"system": "phone", "value": "1"}),
    )
    response = client.patch("/fhir/Patient/p", json=body_, headers=PATCH_HEADERS)
    assert response.status_code == 200, response.get_data(as_text=True)
    result = body(response)
    assert result["gender"] == "female" and result["meta"]["versionId"] == "2"
    assert result["name"][0]["given"][-1] == "Jr"
    assert result["telecom"] == [{"system": "phone", "value": "1"}]  # a list: from the model
    assert body(client.get("/fhir/Patient/p")) == result
    # plain application/json is FHIRPath Patch too
    second = params(op("delete", "Patient.telecom"))
    headers = {"Content-Type": "application/json", "If-Match": 'W/"2"'}
    response = client.patch("/fhir/Patient/p", json=second, headers=headers)
    assert response.status_code == 200 and "telecom" not in body(response)


def test_patch_failures_write_nothing(client: FlaskClient) -> None:
    put_sample(client)
    stale = client.patch(
        "/fhir/Patient/p",
        json=params(op("replace", "Patient.gender", valueCode="female")),
        headers={**FHIR_JSON, "If-Match": 'W/"7"'},
    )
    assert_outcome(stale, 412)
    invalid = params(op("replace", "Patient.gender", valueCode="blue"))
    assert_outcome(client.patch("/fhir/Patient/p", json=invalid, headers=PATCH_HEADERS), 400)
    unsupported = params(op("delete", "Patient.name.select(given)"))
    assert_outcome(
        client.patch("/fhir/Patient/p", json=unsupported, headers=PATCH_HEADERS),
        422,
        "unsupported FHIRPath in patch path",
    )
    ambiguous = params(op("replace", "Patient.identifier", valueIdentifier={"value": "z"}))
    assert_outcome(client.patch("/fhir/Patient/p", json=ambiguous, headers=PATCH_HEADERS), 422)
    malformed = {"resourceType": "Parameters", "parameter": [{"name": "operation"}]}
    assert_outcome(client.patch("/fhir/Patient/p", json=malformed, headers=PATCH_HEADERS), 400)
    assert_outcome(client.patch("/fhir/Patient/p", json=[], headers=PATCH_HEADERS), 400)
    assert_outcome(client.patch("/fhir/Patient/none", json=invalid, headers=FHIR_JSON), 404)
    current = client.get("/fhir/Patient/p")
    assert body(current)["meta"]["versionId"] == "1" and body(current)["gender"] == "male"
    assert client.get("/fhir/Patient/p/_history").get_json()["total"] == 1


def transaction(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def patch_entry(patch: dict[str, Any], **request: str) -> dict[str, Any]:
    return {"resource": patch, "request": {"method": "PATCH", "url": "Patient/p", **request}}


def test_transaction_entry(client: FlaskClient) -> None:
    put_sample(client)
    patch = params(
        op("replace", f"Patient.identifier.where(system='{MRN}').value", valueString="7")
    )
    response = client.post("/fhir", json=transaction(patch_entry(patch)), headers=FHIR_JSON)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert body(response)["entry"][0]["response"]["status"].startswith("200")
    stored = body(client.get("/fhir/Patient/p"))
    assert stored["identifier"][0]["value"] == "7" and stored["meta"]["versionId"] == "2"

    # Any failing entry fails the whole transaction: nothing is written.
    created = {"resource": patient(), "request": {"method": "POST", "url": "Patient"}}
    for bad, status in [
        (patch_entry(patch, ifMatch='W/"1"'), 412),
        (patch_entry(params(op("replace", "Patient.gender", valueCode="blue"))), 400),
        (patch_entry(params(op("delete", "Patient.name.exists()"))), 422),
    ]:
        response = client.post("/fhir", json=transaction(created, bad), headers=FHIR_JSON)
        assert_outcome(response, status)
    assert body(client.get("/fhir/Patient/p"))["meta"]["versionId"] == "2"
    assert client.get("/fhir/Patient").get_json()["total"] == 1
