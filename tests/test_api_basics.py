"""The skeleton's HTTP contract: metadata, health, OperationOutcome errors, negotiation."""

from __future__ import annotations

from flask.testing import FlaskClient

from fhirhub.fhir.definitions import Definitions


def test_metadata_is_a_capability_statement(client: FlaskClient, definitions: Definitions) -> None:
    response = client.get("/fhir/metadata")
    assert response.status_code == 200
    assert response.mimetype == "application/fhir+json"
    body = response.get_json(force=True)
    assert body["resourceType"] == "CapabilityStatement"
    assert body["fhirVersion"] == "4.0.1"
    assert body["kind"] == "instance"
    assert body["rest"][0]["mode"] == "server"
    for resource in body["rest"][0]["resource"]:
        assert resource["type"] in definitions.resource_types
        assert resource["interaction"], "every listed type must support something"


def test_healthz_checks_database(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    health = response.get_json()
    assert health["status"] == "ok" and health["database"] == "ok"
    assert health["parts"]["api"]["state"] == health["parts"]["database"]["state"] == "up"


def test_healthz_reports_unreachable_database(client: FlaskClient, hub) -> None:  # type: ignore[no-untyped-def]
    import time

    from pymongo import MongoClient

    real_client = hub.health_client
    hub.__dict__["health_client"] = MongoClient(
        "mongodb://127.0.0.1:1/", serverSelectionTimeoutMS=400
    )
    try:
        started = time.monotonic()
        response = client.get("/healthz")
        waited = time.monotonic() - started
    finally:
        hub.__dict__["health_client"] = real_client
    assert response.status_code == 503
    assert response.get_json()["status"] == "unavailable"
    assert response.get_json()["parts"]["database"]["state"] == "down"
    assert waited < 1.0


def test_unknown_route_is_operation_outcome(client: FlaskClient) -> None:
    response = client.get("/fhir/NoSuchThing/1/_nope/x")
    assert response.status_code == 404
    body = response.get_json(force=True)
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "not-found"


def test_xml_accept_is_406(client: FlaskClient) -> None:
    response = client.get("/fhir/metadata", headers={"Accept": "application/fhir+xml"})
    assert response.status_code == 406
    assert response.get_json(force=True)["resourceType"] == "OperationOutcome"


def test_format_param_overrides_accept(client: FlaskClient) -> None:
    response = client.get("/fhir/metadata?_format=json", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert client.get("/fhir/metadata?_format=xml").status_code == 406


def test_pretty_output(client: FlaskClient) -> None:
    text = client.get("/fhir/metadata?_pretty=true").get_data(as_text=True)
    assert text.startswith("{\n  ")


def test_plain_json_accept_is_honoured(client: FlaskClient) -> None:
    response = client.get("/fhir/metadata", headers={"Accept": "application/json"})
    assert response.mimetype == "application/json"
