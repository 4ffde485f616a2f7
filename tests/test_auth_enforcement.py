"""Scope enforcement on every kind of request: patient compartments, care teams, v1 and v2
scopes, searches that leave out what is out of scope, batches, history and operations."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from fhirhub.app import create_app
from fhirhub.fhir.errors import ConfigurationError
from fhirhub.hub import Hub
from tests.auth_helpers import clinical_data, register_app

FHIR_JSON = {"Content-Type": "application/fhir+json"}


class Caller:
    """A FHIR client holding one access token."""

    def __init__(self, client: FlaskClient, token: str):
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str) -> Any:
        return self.client.get(path, headers=self.headers)

    def ids(self, path: str) -> list[str]:
        response = self.get(path)
        assert response.status_code == 200, response.get_data(as_text=True)
        return sorted(
            f"{e['resource']['resourceType']}/{e['resource']['id']}"
            for e in response.get_json().get("entry", [])
            if e["resource"]["resourceType"] != "OperationOutcome"
        )

    def send(self, method: str, path: str, body: dict[str, Any]) -> Any:
        return self.client.open(
            path, method=method, json=body, headers={**self.headers, **FHIR_JSON}
        )


@pytest.fixture
def world(auth_client: FlaskClient, auth_hub: Hub) -> dict[str, str]:
    register_app(auth_hub)
    return clinical_data(auth_hub)


def caller(client: FlaskClient, hub: Hub, scope: str, **kw: Any) -> Caller:
    return Caller(client, hub.auth.issue_direct("app", scope, **kw)["access_token"])


def test_patient_token_confined_to_its_compartment(
    auth_client: FlaskClient, auth_hub: Hub, world: dict[str, str]
) -> None:
    alice = caller(auth_client, auth_hub, "patient/*.rs", patient="a")
    assert alice.get("/fhir/Patient/a").status_code == 200
    # Another patient's data answers exactly as an id that does not exist (no existence leak)
    hidden, missing = alice.get("/fhir/Patient/b"), alice.get("/fhir/Patient/nobody")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.get_json()["issue"][0]["code"] == "not-found"
    assert hidden.get_data().replace(b"/b ", b"/nobody ") == missing.get_data()
    assert alice.get("/fhir/Observation/lab-b").status_code == 404
    assert alice.get("/fhir/Observation/lab-b/_history/1").status_code == 404
    assert alice.get("/fhir/Observation/lab-b/_history").status_code == 404
    assert alice.ids("/fhir/Observation") == ["Observation/lab-a", "Observation/vit-a"]
    assert alice.ids("/fhir/Patient") == ["Patient/a"]
    # compartment search for someone else: silently empty
    assert alice.ids("/fhir/Patient/b/Observation") == []
    # _include / _revinclude never bring in another patient's data
    revinclude = alice.ids("/fhir/Patient?_revinclude=Observation:subject")
    assert revinclude == ["Observation/lab-a", "Observation/vit-a", "Patient/a"]
    assert "Patient/b" not in alice.ids("/fhir/Observation?_include=Observation:subject")
    # chains and _has only look at what the token covers
    assert alice.ids("/fhir/Observation?subject:Patient.family=Beta") == []
    assert alice.ids("/fhir/Patient?_has:Observation:subject:status=final") == ["Patient/a"]
    summary = alice.get("/fhir/Observation?_summary=count").get_json()
    assert summary["total"] == 2
    history = alice.ids("/fhir/Observation/_history")
    assert history == ["Observation/lab-a", "Observation/vit-a"]
    assert alice.get("/fhir/Observation/_history").get_json()["total"] == 2
    assert alice.get("/fhir/Patient/b/$everything").status_code == 404
    everything = alice.ids("/fhir/Patient/a/$everything")
    assert "Patient/b" not in everything and "Observation/lab-a" in everything


def test_patient_writes_stay_in_compartment(
    auth_client: FlaskClient, auth_hub: Hub, world: dict[str, str]
) -> None:
    alice = caller(auth_client, auth_hub, "patient/*.cruds", patient="a")
    own = {
        "resourceType": "Observation",
        "status": "preliminary",
        "code": {"text": "mood"},
        "subject": {"reference": "Patient/a"},
    }
    assert alice.send("POST", "/fhir/Observation", own).status_code == 201
    other = {**own, "subject": {"reference": "Patient/b"}}
    assert alice.send("POST", "/fhir/Observation", other).status_code == 403
    # moving B's observation into A's compartment is an update of B's data: refused
    moved = {**own, "id": "lab-b"}
    assert alice.send("PUT", "/fhir/Observation/lab-b", moved).status_code == 404
    assert alice.send("DELETE", "/fhir/Observation/lab-b", {}).status_code == 404
    practitioner = {"resourceType": "Practitioner", "name": [{"family": "Fake"}]}
    assert alice.send("POST", "/fhir/Practitioner", practitioner).status_code == 403
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": "Patient/a"}},
            {"request": {"method": "GET", "url": "Patient/b"}},
            {"request": {"method": "POST", "url": "Observation"}, "resource": other},
        ],
    }
    statuses = [
        e["response"]["status"] for e in alice.send("POST", "/fhir", batch).get_json()["entry"]
    ]
    assert statuses[0].startswith("200") and statuses[1] == "404" and statuses[2] == "403"
    transaction = {**batch, "type": "transaction", "entry": batch["entry"][2:]}
    assert alice.send("POST", "/fhir", transaction).status_code == 403
    assert auth_hub.search.find_resources("Observation", "subject=Patient/b") != []


def test_v1_read_only_and_v2_query_restrictions(
    auth_client: FlaskClient, auth_hub: Hub, world: dict[str, str]
) -> None:
    reader = caller(auth_client, auth_hub, "user/*.read", user="root")
    assert reader.get("/fhir/Patient/b").status_code == 200
    body = {"resourceType": "Patient", "name": [{"family": "New"}]}
    assert reader.send("POST", "/fhir/Patient", body).status_code == 403
    labs = caller(
        auth_client,
        auth_hub,
        "patient/Observation.rs?category="
        "http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
        patient="a",
    )
    assert labs.get("/fhir/Observation/lab-a").status_code == 200
    assert labs.get("/fhir/Observation/vit-a").status_code == 404  # outside the v2 query
    assert labs.ids("/fhir/Observation") == ["Observation/lab-a"]
    assert labs.get("/fhir/Patient/a").status_code == 403  # no Patient scope at all
    patient = {"resourceType": "Patient"}
    assert labs.send("POST", "/fhir/Patient/$validate", patient).status_code == 403
    assert labs.send("POST", "/fhir/Observation/$validate", patient).status_code == 200


def test_specialist_sees_only_care_team_patients(
    auth_client: FlaskClient, auth_hub: Hub, world: dict[str, str]
) -> None:
    doctor = caller(auth_client, auth_hub, "user/*.cruds", user="drheart")
    assert doctor.ids("/fhir/CarePlan") == ["CarePlan/plan-a"]
    assert doctor.get("/fhir/CarePlan/plan-b").status_code == 404
    assert doctor.get("/fhir/Practitioner/other").status_code == 200  # not patient data
    assert doctor.ids("/fhir/Patient") == ["Patient/a"]
    # leaving the care team ends access at once, with the same token
    team = auth_hub.resources.read("CareTeam", "team-a").resource
    assert team is not None
    auth_hub.resources.update("CareTeam", "team-a", {**team, "status": "inactive"})
    assert doctor.get("/fhir/CarePlan/plan-a").status_code == 404
    assert doctor.ids("/fhir/CarePlan") == []


def test_audit_events_recorded_and_admin_only(
    auth_client: FlaskClient, auth_hub: Hub, world: dict[str, str]
) -> None:
    alice = caller(auth_client, auth_hub, "patient/*.rs", patient="a", user="alice")
    alice.get("/fhir/Patient/a")
    alice.get("/fhir/Patient/b")
    auth_client.get("/fhir/Patient/a")  # anonymous: 401, audited too
    admin = caller(auth_client, auth_hub, "user/*.cruds", user="root")
    events = admin.get("/fhir/AuditEvent?agent=user:alice").get_json()["entry"]
    outcomes = sorted((e["resource"]["outcome"], e["resource"]["entity"][0]) for e in events)
    assert [o for o, _ in outcomes] == ["0", "4"]
    assert {"what": {"reference": "Patient/b"}} in [entity for _, entity in outcomes]
    first = events[0]["resource"]
    assert first["agent"][0]["who"] == {"reference": "Patient/a"}
    assert first["recorded"] and first["action"] == "R"
    failed = admin.get("/fhir/AuditEvent?outcome=4").get_json()["entry"]
    assert len(failed) >= 2  # the 403 and the anonymous 401
    assert alice.get("/fhir/AuditEvent").status_code == 403


def test_auth_off_only_on_loopback(auth_hub: Hub) -> None:
    public = auth_hub.settings.with_overrides(auth=False, host="0.0.0.0")
    with pytest.raises(ConfigurationError):
        create_app(public, auth_hub)
    loopback = auth_hub.settings.with_overrides(auth=False, host="127.0.0.1")
    assert create_app(loopback, auth_hub).test_client().get("/fhir/Patient").status_code == 200
