"""What a confined token cannot see does not exist for it: the same 404 as a missing id on
every interaction, and history and $everything totals that count only what it sees."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from fhirhub.hub import Hub
from tests.auth_helpers import clinical_data, register_app
from tests.test_auth_enforcement import Caller

PATCH = {"Content-Type": "application/json-patch+json"}


@pytest.fixture
def alice(auth_client: FlaskClient, auth_hub: Hub) -> Caller:
    register_app(auth_hub)
    clinical_data(auth_hub)
    token = auth_hub.auth.issue_direct("app", "patient/*.cruds", user="alice", patient="a")
    return Caller(auth_client, token["access_token"])


def _same_404(hidden: Any, missing: Any, hidden_id: str, missing_id: str) -> None:
    assert hidden.status_code == missing.status_code == 404
    assert hidden.get_data().replace(hidden_id.encode(), missing_id.encode()) == missing.get_data()


def test_every_interaction_answers_hidden_as_missing(alice: Caller) -> None:
    for path in ("{}", "{}/_history/1", "{}/_history"):
        hidden = alice.get("/fhir/Observation/" + path.format("lab-b"))
        missing = alice.get("/fhir/Observation/" + path.format("nope"))
        _same_404(hidden, missing, "lab-b", "nope")
    ops = [{"op": "replace", "path": "/status", "value": "amended"}]
    patch = [
        alice.client.patch(f"/fhir/Observation/{i}", json=ops, headers={**alice.headers, **PATCH})
        for i in ("lab-b", "nope")
    ]
    _same_404(*patch, "lab-b", "nope")
    deletes = [alice.send("DELETE", f"/fhir/Observation/{i}", {}) for i in ("lab-b", "nope")]
    _same_404(*deletes, "lab-b", "nope")
    # A type the token has no scope for at all is a plain 403, existing id or not.
    reader = alice.client.application.extensions["fhirhub"].auth.issue_direct(
        "app", "patient/Observation.rs", patient="a"
    )
    labs = Caller(alice.client, reader["access_token"])
    assert labs.get("/fhir/CarePlan/plan-b").status_code == 403
    assert labs.get("/fhir/CarePlan/nope").status_code == 403


def test_deleted_resources_reveal_themselves_only_to_who_saw_them(
    alice: Caller, auth_hub: Hub
) -> None:
    auth_hub.resources.delete("Observation", "vit-b")  # someone else's
    own = alice.send("DELETE", "/fhir/Observation/vit-a", {})
    assert own.status_code == 204
    assert alice.get("/fhir/Observation/vit-a").status_code == 410
    _same_404(
        alice.get("/fhir/Observation/vit-b"), alice.get("/fhir/Observation/nope"), "vit-b", "nope"
    )
    _same_404(
        alice.get("/fhir/Observation/vit-b/_history/2"),
        alice.get("/fhir/Observation/nope/_history/2"),
        "vit-b",
        "nope",
    )
    # History: her own deletion is there, the other patient's is not; totals match.
    history = alice.get("/fhir/Observation/_history").get_json()
    seen = [(e["fullUrl"].rsplit("/", 1)[1], e["request"]["method"]) for e in history["entry"]]
    assert sorted(seen) == [("lab-a", "PUT"), ("vit-a", "DELETE"), ("vit-a", "PUT")]
    assert history["total"] == 3


def test_history_totals_and_pages_count_only_what_is_visible(alice: Caller, auth_hub: Hub) -> None:
    system = alice.get("/fhir/_history").get_json()
    visible = [e["fullUrl"].split("/fhir/")[1] for e in system["entry"]]
    assert system["total"] == len(visible) and "Patient/b" not in visible
    assert "Practitioner/spec" in visible  # not patient data: patient/*.rs reads it
    first = alice.get("/fhir/Observation/_history?_count=1").get_json()
    assert first["total"] == 2 and len(first["entry"]) == 1
    follow = next(link["url"] for link in first["link"] if link["relation"] == "next")
    second = alice.get(follow.split("testserver")[1]).get_json()
    assert second["total"] == 2 and len(second["entry"]) == 1
    assert second["entry"][0]["fullUrl"] != first["entry"][0]["fullUrl"]
    assert not any(link["relation"] == "next" for link in second["link"])
    admin = auth_hub.auth.issue_direct("app", "user/*.cruds", user="root")["access_token"]
    everything = alice.client.get("/fhir/_history", headers={"Authorization": f"Bearer {admin}"})
    assert everything.get_json()["total"] > system["total"]


def test_everything_total_counts_what_the_token_sees(
    auth_client: FlaskClient, auth_hub: Hub, alice: Caller
) -> None:
    full = alice.get("/fhir/Patient/a/$everything").get_json()
    matches = [e for e in full["entry"] if e["search"]["mode"] == "match"]
    assert full["total"] == len(matches) >= 4
    paged = alice.get("/fhir/Patient/a/$everything?_count=2").get_json()
    assert paged["total"] == full["total"] and len(paged["entry"]) >= 2
    system = "http://terminology.hl7.org/CodeSystem/observation-category"
    scope = f"patient/Patient.rs patient/Observation.rs?category={system}|laboratory"
    token = auth_hub.auth.issue_direct("app", scope, patient="a")["access_token"]
    labs = Caller(auth_client, token)
    narrow = labs.get("/fhir/Patient/a/$everything?_count=1").get_json()
    assert narrow["total"] == 2  # Patient/a and its laboratory Observation, nothing else
    assert labs.ids("/fhir/Patient/a/$everything") == ["Observation/lab-a", "Patient/a"]
    all_patients = labs.get("/fhir/Patient/$everything").get_json()
    assert all_patients["total"] == 2
