"""What a token may change decides what it may later see: access-granting writes (CareTeam)
are authorised by the subject's care, shared types (directory data, roles, endpoints) are
written only by their owners or admins, on every write path (create, update, PATCH, DELETE,
conditional forms, batch and transaction entries)."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from fhirhub.hub import Hub
from tests.auth_helpers import PASSWORD, clinical_data, register_app
from tests.test_auth_enforcement import Caller, caller

PATCH = {"Content-Type": "application/json-patch+json"}
# The documented manager role (README, SMART: who may write what).
ROLE_SYSTEM = "https://fhirhub.example/fhir/CodeSystem/care-team-role"
MANAGER_ROLE = [{"coding": [{"system": ROLE_SYSTEM, "code": "manager"}]}]


def put(hub: Hub, resource: dict[str, Any]) -> None:
    hub.resources.update(resource["resourceType"], resource["id"], resource)


@pytest.fixture
def world(auth_client: FlaskClient, auth_hub: Hub) -> dict[str, str]:
    """clinical_data (patients a and b, Dr Heart on a's team) plus: Dr Lead, who manages
    b's care; Dr Heart also a plain member of b's team; roles and Endpoints of both."""
    register_app(auth_hub)
    ids = clinical_data(auth_hub)
    put(auth_hub, {"resourceType": "Practitioner", "id": "lead", "name": [{"family": "Lead"}]})
    auth_hub.auth.add_user("drlead", PASSWORD, fhir_user="Practitioner/lead")
    auth_hub.auth.add_user("drother", PASSWORD, fhir_user="Practitioner/other")
    put(
        auth_hub,
        {
            "resourceType": "CareTeam",
            "id": "team-b",
            "status": "active",
            "subject": {"reference": "Patient/b"},
            "participant": [
                {"member": {"reference": "Practitioner/lead"}, "role": MANAGER_ROLE},
                {"member": {"reference": "Practitioner/spec"}},
            ],
        },
    )
    for who in ("spec", "other"):
        put(
            auth_hub,
            {
                "resourceType": "Endpoint",
                "id": f"ep-{who}",
                "status": "active",
                "connectionType": {
                    "system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
                    "code": "hl7-fhir-rest",
                },
                "payloadType": [{"text": "any"}],
                "address": f"http://127.0.0.1:9/{who}",
            },
        )
        put(
            auth_hub,
            {
                "resourceType": "PractitionerRole",
                "id": f"role-{who}",
                "active": True,
                "practitioner": {"reference": f"Practitioner/{who}"},
                "endpoint": [{"reference": f"Endpoint/ep-{who}"}],
            },
        )
    return ids


def team(subject: str, *members: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "CareTeam",
        "status": "active",
        "subject": {"reference": subject},
        "participant": [{"member": {"reference": m}} for m in members],
        **extra,
    }


def sees(client: FlaskClient, hub: Hub, user: str, path: str) -> bool:
    doctor = caller(client, hub, "user/*.rs", user=user)
    return bool(doctor.get(path).status_code == 200)


def patch(who: Caller, path: str, ops: list[dict[str, Any]]) -> Any:
    return who.client.patch(path, json=ops, headers={**who.headers, **PATCH})


def bundle(kind: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def entry(method: str, url: str, resource: dict[str, Any] | None = None, **request: str) -> Any:
    found: dict[str, Any] = {"request": {"method": method, "url": url, **request}}
    if resource is not None:
        found["resource"] = resource
    return found


def statuses(response: Any) -> list[str]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return [e["response"]["status"].split()[0] for e in response.get_json()["entry"]]


# -- item 1: CareTeam injection -------------------------------------------------------------


def test_patient_cannot_open_another_patients_record(
    auth_client: FlaskClient, auth_hub: Hub, world: dict[str, str]
) -> None:
    alice = caller(auth_client, auth_hub, "patient/*.cruds", user="alice", patient="a")
    # The participant Patient/a puts the team in a's compartment too: that used to be enough.
    injected = team("Patient/b", "Patient/a", "Practitioner/other")
    response = alice.send("POST", "/fhir/CareTeam", injected)
    assert response.status_code == 403, response.get_data(as_text=True)
    assert "manages" in response.get_data(as_text=True)
    assert not sees(auth_client, auth_hub, "drother", "/fhir/Patient/b")
    as_user = caller(auth_client, auth_hub, "user/*.cruds", user="alice")
    assert as_user.send("POST", "/fhir/CareTeam", injected).status_code == 403
    # the same through every other write path
    conditional = {**alice.headers, "Content-Type": "application/fhir+json"}
    conditional["If-None-Exist"] = "identifier=urn:x|1"
    created = auth_client.post("/fhir/CareTeam", json=injected, headers=conditional)
    assert created.status_code == 403
    put_new = alice.send("PUT", "/fhir/CareTeam/new-team", {**injected, "id": "new-team"})
    assert put_new.status_code == 403
    tagged = {**injected, "identifier": [{"system": "urn:x", "value": "2"}]}
    conditional_put = alice.send("PUT", "/fhir/CareTeam?identifier=urn:x|2", tagged)
    assert conditional_put.status_code == 403
    batch = bundle("batch", entry("POST", "CareTeam", injected))
    assert statuses(alice.send("POST", "/fhir", batch)) == ["403"]
    transaction = {**batch, "type": "transaction"}
    assert alice.send("POST", "/fhir", transaction).status_code == 403
    # her own team: she may not add practitioners either (widening needs a care manager)
    patched = patch(
        alice,
        "/fhir/CareTeam/team-a",
        [
            {
                "op": "add",
                "path": "/participant/-",
                "value": {"member": {"reference": "Practitioner/other"}},
            }
        ],
    )
    assert patched.status_code == 403
    assert not sees(auth_client, auth_hub, "drother", "/fhir/Patient/a")
    assert auth_hub.search.find_resources("CareTeam", "participant=Practitioner/other") == []


def test_patient_may_take_access_away_from_own_team(
    auth_client: FlaskClient, auth_hub: Hub, world: dict[str, str]
) -> None:
    alice = caller(auth_client, auth_hub, "patient/*.cruds", user="alice", patient="a")
    assert sees(auth_client, auth_hub, "drheart", "/fhir/Patient/a")
    current = alice.get("/fhir/CareTeam/team-a").get_json()
    without = {k: v for k, v in current.items() if k != "participant"}
    removed = alice.send("PUT", "/fhir/CareTeam/team-a", without)
    assert removed.status_code == 200, removed.get_data(as_text=True)
    assert not sees(auth_client, auth_hub, "drheart", "/fhir/Patient/a")
    # re-adding is widening again
    assert alice.send("PUT", "/fhir/CareTeam/team-a", current).status_code == 403
    # a team of her own with nobody else on it grants nothing: allowed; so is deleting it
    own = alice.send("POST", "/fhir/CareTeam", team("Patient/a", "Patient/a"))
    assert own.status_code == 201
    assert alice.send("DELETE", f"/fhir/CareTeam/{own.get_json()['id']}", {}).status_code == 204


def test_practitioner_cannot_join_or_change_teams_without_managing(
    auth_client: FlaskClient, auth_hub: Hub, world: dict[str, str]
) -> None:
    heart = caller(auth_client, auth_hub, "user/*.cruds", user="drheart")
    other = caller(auth_client, auth_hub, "user/*.cruds", user="drother")
    # Dr Other adds himself to b's record through a team that also names a patient he sees
    # nobody: refused whatever compartment it lands in.
    joined = other.send("POST", "/fhir/CareTeam", team("Patient/b", "Practitioner/other"))
    assert joined.status_code == 403
    # Dr Heart sees a (and b, as a plain member of b's team), but manages neither.
    sneaky = team("Patient/b", "Patient/a", "Practitioner/other")
    assert heart.send("POST", "/fhir/CareTeam", sneaky).status_code == 403
    add_other = [
        {
            "op": "add",
            "path": "/participant/-",
            "value": {"member": {"reference": "Practitioner/other"}},
        }
    ]
    assert patch(heart, "/fhir/CareTeam/team-a", add_other).status_code == 403
    assert patch(heart, "/fhir/CareTeam/team-b", add_other).status_code == 403
    moved = heart.get("/fhir/CareTeam/team-a").get_json()
    moved["subject"] = {"reference": "Patient/b"}
    assert heart.send("PUT", "/fhir/CareTeam/team-a", moved).status_code == 403
    assert heart.send("DELETE", "/fhir/CareTeam/team-b", {}).status_code == 403
    conditional_delete = heart.send("DELETE", "/fhir/CareTeam?_id=team-b", {})
    assert conditional_delete.status_code == 403
    batch = bundle("batch", entry("DELETE", "CareTeam/team-b"), entry("POST", "CareTeam", sneaky))
    assert statuses(heart.send("POST", "/fhir", batch)) == ["403", "403"]
    assert not sees(auth_client, auth_hub, "drother", "/fhir/Patient/b")
    assert auth_hub.resources.read("CareTeam", "team-b").resource is not None


def test_care_manager_may_open_the_record_to_others(
    auth_client: FlaskClient, auth_hub: Hub, world: dict[str, str]
) -> None:
    lead = caller(auth_client, auth_hub, "user/*.cruds", user="drlead")
    assert not sees(auth_client, auth_hub, "drother", "/fhir/Patient/b")
    add_other = [
        {
            "op": "add",
            "path": "/participant/-",
            "value": {"member": {"reference": "Practitioner/other"}},
        }
    ]
    assert patch(lead, "/fhir/CareTeam/team-b", add_other).status_code == 200
    assert sees(auth_client, auth_hub, "drother", "/fhir/Patient/b")
    new_team = lead.send("POST", "/fhir/CareTeam", team("Patient/b", "Practitioner/spec"))
    assert new_team.status_code == 201
    # ...but only for patients whose care he manages
    assert (
        lead.send("POST", "/fhir/CareTeam", team("Patient/a", "Practitioner/lead")).status_code
        == 403
    )
    # an admin manages everyone's
    root = caller(auth_client, auth_hub, "user/*.cruds", user="root")
    assert (
        root.send("POST", "/fhir/CareTeam", team("Patient/a", "Practitioner/lead")).status_code
        == 201
    )


# -- item 2: shared types are confined ------------------------------------------------------


def test_practitioner_writes_only_own_directory_entries(
    auth_client: FlaskClient, auth_hub: Hub, world: dict[str, str]
) -> None:
    heart = caller(auth_client, auth_hub, "user/*.cruds", user="drheart")
    role = heart.get("/fhir/PractitionerRole/role-other").get_json()
    hijacked = {**role, "practitioner": {"reference": "Practitioner/spec"}}
    assert heart.send("PUT", "/fhir/PractitionerRole/role-other", hijacked).status_code == 403
    take = [{"op": "replace", "path": "/practitioner/reference", "value": "Practitioner/spec"}]
    assert patch(heart, "/fhir/PractitionerRole/role-other", take).status_code == 403
    conditional = heart.send(
        "PUT", "/fhir/PractitionerRole?practitioner=Practitioner/other", hijacked
    )
    assert conditional.status_code == 403
    assert heart.send("DELETE", "/fhir/PractitionerRole/role-other", {}).status_code == 403
    for_other = {
        "resourceType": "PractitionerRole",
        "practitioner": {"reference": "Practitioner/other"},
    }
    assert heart.send("POST", "/fhir/PractitionerRole", for_other).status_code == 403
    own_role = {
        "resourceType": "PractitionerRole",
        "practitioner": {"reference": "Practitioner/spec"},
    }
    assert heart.send("POST", "/fhir/PractitionerRole", own_role).status_code == 201
    other = heart.get("/fhir/Practitioner/other").get_json()
    renamed = {**other, "name": [{"family": "Impostor"}]}
    assert heart.send("PUT", "/fhir/Practitioner/other", renamed).status_code == 403
    mine = heart.get("/fhir/Practitioner/spec").get_json()
    assert (
        heart.send("PUT", "/fhir/Practitioner/spec", {**mine, "gender": "female"}).status_code
        == 200
    )
    assert heart.send("DELETE", "/fhir/Practitioner/spec", {}).status_code == 403
    directory = [
        {"resourceType": "Organization", "name": "Fake clinic"},
        {"resourceType": "Location", "name": "Fake ward"},
        {"resourceType": "HealthcareService", "name": "Fake service"},
        {"resourceType": "Practitioner", "name": [{"family": "Fake"}]},
        {
            "resourceType": "SearchParameter",
            "url": "http://example.org/sp",
            "name": "x",
            "status": "active",
            "description": "x",
            "code": "x",
            "base": ["Patient"],
            "type": "token",
            "expression": "Patient.gender",
        },
    ]
    for resource in directory:
        response = heart.send("POST", f"/fhir/{resource['resourceType']}", resource)
        assert response.status_code == 403, (resource["resourceType"], response.get_data())
    batch = bundle(
        "batch",
        entry("PUT", "PractitionerRole/role-other", hijacked),
        entry("POST", "Organization", directory[0]),
        entry("PUT", "Practitioner/spec", {**mine, "gender": "male"}),
    )
    assert statuses(heart.send("POST", "/fhir", batch)) == ["403", "403", "200"]
    assert heart.send("POST", "/fhir", {**batch, "type": "transaction"}).status_code == 403
    stored = auth_hub.resources.read("PractitionerRole", "role-other").resource or {}
    assert stored["practitioner"] == {"reference": "Practitioner/other"}
    # Dr Heart gained nothing: b is still visible only through his own membership
    assert not sees(auth_client, auth_hub, "drheart", "/fhir/CarePlan/plan-nope")


def test_patients_write_no_shared_data(
    auth_client: FlaskClient, auth_hub: Hub, world: dict[str, str]
) -> None:
    alice = caller(auth_client, auth_hub, "user/*.cruds", user="alice")
    spec = alice.get("/fhir/Practitioner/spec").get_json()
    assert (
        alice.send("PUT", "/fhir/Practitioner/spec", {**spec, "gender": "male"}).status_code == 403
    )
    assert alice.send("DELETE", "/fhir/Endpoint/ep-spec", {}).status_code == 403
    org = {"resourceType": "Organization", "name": "Mine"}
    assert alice.send("POST", "/fhir/Organization", org).status_code == 403
    # a Task about herself is hers to write; one about someone else is not
    task = {"resourceType": "Task", "status": "requested", "intent": "order"}
    own = alice.send("POST", "/fhir/Task", {**task, "for": {"reference": "Patient/a"}})
    assert own.status_code == 201, own.get_data(as_text=True)
    assert (
        alice.send("POST", "/fhir/Task", {**task, "for": {"reference": "Patient/b"}}).status_code
        == 403
    )
    # an admin writes directory data
    root = caller(auth_client, auth_hub, "user/*.cruds", user="root")
    assert root.send("POST", "/fhir/Organization", org).status_code == 201
