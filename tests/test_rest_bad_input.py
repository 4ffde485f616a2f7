"""Hostile and malformed requests: a clear 4xx OperationOutcome, nothing written, and the
server keeps serving."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from fhirhub.config import Settings
from fhirhub.hub import Hub
from fhirhub.storage.documents import RESOURCES, VERSION_TYPE
from tests.helpers import FHIR_JSON, assert_outcome, create, patient

BAD_BODIES = [
    (b'{"resourceType": "Patient",', "malformed JSON"),
    (b"[]", "JSON object"),
    (b"42", "JSON object"),
    (b'{"resourceType":"Patient","gender":"male","gender":"female"}', "duplicate"),
    (b'{"resourceType":"Patient","$set":{"x":1}}', "illegal"),
    (b'{"resourceType":"Patient","name":[{"fam.ily":"x"}]}', "illegal"),
    (b'{"resourceType":"Patient","extension":[{"url":"u","$where":"1"}]}', "illegal"),
    (b'{"resourceType":"Patient","x":' + b"[" * 5000 + b"]" * 5000 + b"}", "nested"),
]


def nothing_written(hub: Hub) -> bool:
    return hub.db[RESOURCES].count_documents({}) == 0


@pytest.mark.parametrize(("data", "fragment"), BAD_BODIES)
def test_bad_bodies(client: FlaskClient, hub: Hub, data: bytes, fragment: str) -> None:
    for method, url in (("POST", "/fhir/Patient"), ("PUT", "/fhir/Patient/x")):
        response = client.open(url, method=method, data=data, headers=FHIR_JSON)
        assert_outcome(response, 400, fragment)
    assert nothing_written(hub)
    assert client.get("/fhir/metadata").status_code == 200


def test_wrong_content_type(client: FlaskClient, hub: Hub) -> None:
    response = client.post("/fhir/Patient", data=b"<Patient/>", content_type="application/xml")
    assert_outcome(response, 415, "Content-Type")
    assert_outcome(client.post("/fhir/Patient", data=b"{}"), 415)
    assert nothing_written(hub)


def test_unknown_type_is_404(client: FlaskClient, hub: Hub) -> None:
    assert_outcome(
        client.post("/fhir/Spaceship", json={"resourceType": "Spaceship"}, headers=FHIR_JSON),
        404,
        "Spaceship",
    )
    assert_outcome(client.get("/fhir/Spaceship/1"), 404)
    assert nothing_written(hub)


@pytest.mark.parametrize("bad_id", ["a" * 65, "has space", "semi;colon", "$where", "a_b"])
def test_bad_ids(client: FlaskClient, hub: Hub, bad_id: str) -> None:
    assert_outcome(client.get(f"/fhir/Patient/{bad_id}"), 400, "invalid id")
    response = client.put(f"/fhir/Patient/{bad_id}", json=patient(id=bad_id), headers=FHIR_JSON)
    assert_outcome(response, 400)
    assert nothing_written(hub)


def test_body_over_limit_is_413(settings: Settings, hub: Hub) -> None:
    app = __import__("fhirhub.app", fromlist=["create_app"]).create_app(
        settings.with_overrides(max_body_bytes=2048), hub
    )
    client = app.test_client()
    big = patient(name=[{"family": "x" * 5000}])
    assert_outcome(client.post("/fhir/Patient", json=big, headers=FHIR_JSON), 413)
    assert nothing_written(hub)
    assert client.get("/fhir/metadata").status_code == 200


def test_stale_if_match_writes_nothing(client: FlaskClient, hub: Hub) -> None:
    created = create(client, patient())
    rid = created.get_json(force=True)["id"]
    headers = {**FHIR_JSON, "If-Match": 'W/"2"'}
    assert_outcome(client.put(f"/fhir/Patient/{rid}", json=patient(id=rid), headers=headers), 412)
    assert_outcome(
        client.put(
            f"/fhir/Patient/{rid}",
            json=patient(id=rid),
            headers={**FHIR_JSON, "If-Match": "garbage"},
        ),
        400,
        "ETag",
    )
    assert hub.db[RESOURCES].count_documents({VERSION_TYPE: {"$exists": True}}) == 1


def test_operator_shaped_query_values_stay_values(client: FlaskClient, app: Flask) -> None:
    create(client, patient(identifier=[{"system": "s", "value": "v"}]))
    headers = {**FHIR_JSON, "If-None-Exist": "identifier[$ne]=x"}
    assert_outcome(client.post("/fhir/Patient", json=patient(), headers=headers), 400)
    headers = {**FHIR_JSON, "If-None-Exist": 'identifier={"$ne":null}'}
    response = client.post("/fhir/Patient", json=patient(), headers=headers)
    assert response.status_code == 201  # treated as a literal identifier value: no match
