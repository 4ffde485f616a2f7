"""Small helpers shared by API tests."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from fhirhub.config import PROJECT_ROOT

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


def corpus_dir() -> Path:
    """The shared real-data corpus (official R4 examples, Synthea): FHIRHUB_CORPUS_DIR, else
    ../shared/fhir-corpus next to the checkout, else /work/shared/fhir-corpus."""
    candidates = [
        os.environ.get("FHIRHUB_CORPUS_DIR", ""),
        str(PROJECT_ROOT.parent / "shared" / "fhir-corpus"),
        "/work/shared/fhir-corpus",
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "r4-examples").is_dir():
            return Path(candidate)
    raise FileNotFoundError("fhir-corpus not found; set FHIRHUB_CORPUS_DIR")
