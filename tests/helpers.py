"""Small helpers shared by API tests."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def body(response: TestResponse) -> Any:
    return response.get_json(force=True)


def create(client: FlaskClient, resource: dict[str, Any], **headers: str) -> TestResponse:
    response = client.post(
        f"/fhir/{resource['resourceType']}", json=resource, headers={**FHIR_JSON, **headers}
    )
    assert response.status_code in (200, 201), response.get_data(as_text=True)
    return response


def patient(family: str = "Chalmers", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "name": [{"family": family, "given": ["Peter", "James"]}],
        "gender": "male",
        "birthDate": "1974-12-25",
        **extra,
    }


def assert_outcome(response: TestResponse, status: int, fragment: str = "") -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    outcome = body(response)
    assert outcome["resourceType"] == "OperationOutcome"
    if fragment:
        text = " ".join(i.get("diagnostics", "") for i in outcome["issue"])
        assert fragment in text, text
    return outcome
