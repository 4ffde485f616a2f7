"""Composition/$document: a document Bundle with the Composition first and every resource it
references, identifier and timestamp; references the token may not read refuse the whole
document (no holes); persist stores it for unrestricted tokens only. And amendments:
a DocumentReference that replaces another supersedes it."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from fhirhub.hub import Hub
from tests.coordination_support import put, who, world


@pytest.fixture
def hub_world(auth_hub: Hub) -> Hub:
    world(auth_hub)
    return auth_hub


def composition(*entries: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Composition",
        "status": "final",
        "type": {
            "coding": [{"system": "http://loinc.org", "code": "11488-4", "display": "Consult note"}]
        },
        "subject": {"reference": "Patient/p"},
        "date": "2026-03-01T10:00:00Z",
        "author": [{"reference": "Practitioner/lead"}],
        "title": "Cardiology consult",
        "section": [
            {
                "title": "Assessment",
                "text": {
                    "status": "generated",
                    "div": '<div xmlns="http://www.w3.org/1999/xhtml">Stable</div>',
                },
                "entry": [{"reference": e} for e in entries],
            }
        ],
        **extra,
    }


def test_document_bundle_holds_every_referenced_resource(
    auth_client: FlaskClient, hub_world: Hub
) -> None:
    lead = who(auth_client, hub_world, "lead")
    made = lead.send(
        "POST", "/fhir/Composition", composition("Condition/cond-p", "Observation/obs-recent")
    )
    assert made.status_code == 201, made.get_data(as_text=True)
    cid = made.get_json()["id"]
    response = lead.get(f"/fhir/Composition/{cid}/$document")
    assert response.status_code == 200, response.get_data(as_text=True)
    bundle = response.get_json()
    assert bundle["type"] == "document" and bundle["timestamp"]
    assert bundle["identifier"]["system"] == "urn:ietf:rfc:3986"
    kinds = [f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]]
    assert kinds == [
        f"Composition/{cid}",
        "Patient/p",
        "Practitioner/lead",
        "Condition/cond-p",
        "Observation/obs-recent",
    ]
    assert all(e["fullUrl"].endswith(k) for e, k in zip(bundle["entry"], kinds, strict=True))
    # the bundle is a valid document as this server validates it
    assert not [i for i in hub_world.validator.validate(bundle) if i.severity in ("error", "fatal")]
    # persist: unrestricted tokens only; stored as a Bundle
    assert lead.get(f"/fhir/Composition/{cid}/$document?persist=true").status_code == 403
    root = who(auth_client, hub_world, "root")
    stored = root.get(f"/fhir/Composition/{cid}/$document?persist=true")
    assert stored.status_code == 201 and "/fhir/Bundle/" in stored.headers["Location"]
    # outsiders cannot have it; a Composition naming what the token may not read is refused
    outsider = who(auth_client, hub_world, "outsider")
    assert outsider.get(f"/fhir/Composition/{cid}/$document").status_code == 404
    put(hub_world, {**composition("Condition/cond-q"), "id": "mixed"})
    refused = lead.get("/fhir/Composition/mixed/$document")
    assert refused.status_code == 422
    assert "Condition/cond-q" in refused.get_json()["issue"][0]["diagnostics"]
    assert lead.get("/fhir/Composition/nope/$document").status_code == 404
    rest = lead.get("/fhir/metadata").get_json()["rest"][0]
    listed = {(r["type"], o["name"]) for r in rest["resource"] for o in r.get("operation", [])}
    assert {("Composition", "document"), ("Communication", "mark-read")} <= listed
    assert {("Communication", "inbox")} <= listed


def test_amendment_supersedes_the_replaced_document(
    auth_client: FlaskClient, hub_world: Hub
) -> None:
    lead = who(auth_client, hub_world, "lead")
    replacement = {
        "resourceType": "DocumentReference",
        "status": "current",
        "docStatus": "amended",
        "subject": {"reference": "Patient/p"},
        "type": {"text": "Echo report"},
        "relatesTo": [{"code": "replaces", "target": {"reference": "DocumentReference/doc-echo"}}],
        "content": [{"attachment": {"contentType": "text/plain", "data": "Zml4ZWQ="}}],
    }
    made = lead.send("POST", "/fhir/DocumentReference", replacement)
    assert made.status_code == 201, made.get_data(as_text=True)
    old = hub_world.resources.read("DocumentReference", "doc-echo").resource
    assert old is not None and old["status"] == "superseded"
    # a replacement of a missing document, or of another patient's, is refused
    for target in ("DocumentReference/nope", "DocumentReference/cond-q"):
        bad = {**replacement, "relatesTo": [{"code": "replaces", "target": {"reference": target}}]}
        assert lead.send("POST", "/fhir/DocumentReference", bad).status_code == 422
    put(
        hub_world,
        {
            "resourceType": "DocumentReference",
            "id": "doc-q",
            "status": "current",
            "subject": {"reference": "Patient/q"},
            "content": [{"attachment": {"contentType": "text/plain", "data": "eA=="}}],
        },
    )
    bad = {
        **replacement,
        "relatesTo": [{"code": "appends", "target": {"reference": "DocumentReference/doc-q"}}],
    }
    assert lead.send("POST", "/fhir/DocumentReference", bad).status_code == 422
    superseded = {
        **replacement,
        "relatesTo": [{"code": "replaces", "target": {"reference": "DocumentReference/doc-echo"}}],
    }
    assert lead.send("POST", "/fhir/DocumentReference", superseded).status_code == 422
