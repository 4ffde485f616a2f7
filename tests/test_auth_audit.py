"""The audit trail of the authorization server (sign-in, decisions, tokens, introspection,
revocation) and of every batch/transaction entry, as an admin searches it."""

from __future__ import annotations

from typing import Any

import orjson
from flask.testing import FlaskClient

from fhirhub.auth.audit import COLLECTION
from fhirhub.hub import Hub
from tests.auth_helpers import (
    PASSWORD,
    authorize_params,
    clinical_data,
    code_from,
    pkce,
    register_app,
    sign_in,
    token_form,
    url,
)

DCM = "http://dicom.nema.org/resources/ontology/DCM"


def _events(client: FlaskClient, hub: Hub, query: str) -> list[dict[str, Any]]:
    token = hub.auth.issue_direct("app", "user/*.cruds", user="root")["access_token"]
    response = client.get(f"/fhir/AuditEvent?{query}", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.get_data(as_text=True)
    return [e["resource"] for e in response.get_json().get("entry", [])]


def _subtypes(event: dict[str, Any]) -> set[str]:
    return {c["code"] for c in event["subtype"]}


def test_authorization_server_events(auth_client: FlaskClient, auth_hub: Hub) -> None:
    clinical_data(auth_hub)
    register_app(auth_hub)
    secrets: list[str] = [PASSWORD]
    verifier, challenge = pkce()
    scope = "launch/patient offline_access patient/*.rs"
    authorize = url("/auth/authorize", **authorize_params(auth_hub, scope, challenge))
    request_id = auth_client.get(authorize).headers["Location"].split("req=")[1]
    wrong = auth_client.post(
        "/auth/login", data={"req": request_id, "username": "alice", "password": "guess-1"}
    )
    assert wrong.status_code == 401
    typo = {"req": request_id, "username": PASSWORD, "password": "alice"}  # fields swapped
    assert auth_client.post("/auth/login", data=typo).status_code == 401
    code = code_from(sign_in(auth_client, authorize, "alice"))
    bad = auth_client.post("/auth/token", data=token_form(code, pkce()[0]))  # wrong verifier
    assert bad.status_code == 400
    code = code_from(sign_in(auth_client, authorize, "alice"))
    tokens = auth_client.post("/auth/token", data=token_form(code, verifier)).get_json()
    rotated = auth_client.post(
        "/auth/token",
        data={
            "grant_type": "refresh_token",
            "client_id": "app",
            "refresh_token": tokens["refresh_token"],
        },
    ).get_json()
    resource_server = auth_hub.auth.register_client(
        "rs", "symmetric", redirect_uris=[], scope="patient/*.rs"
    )
    assert resource_server
    secrets.append(resource_server)
    introspector = {"client_id": "rs", "client_secret": resource_server}
    auth_client.post("/auth/introspect", data={"token": tokens["access_token"], **introspector})
    auth_client.post("/auth/revoke", data={"token": rotated["access_token"], "client_id": "app"})
    replay = auth_client.post(
        "/auth/token",
        data={
            "grant_type": "refresh_token",
            "client_id": "app",
            "refresh_token": tokens["refresh_token"],
        },
    )
    assert replay.status_code == 400
    evil = authorize_params(auth_hub, scope, challenge, redirect_uri="http://evil.example/cb")
    assert auth_client.get(url("/auth/authorize", **evil)).status_code == 400
    secrets += [code, verifier, tokens["access_token"], tokens["refresh_token"]]
    secrets += [rotated["access_token"], rotated["refresh_token"]]

    logins = _events(auth_client, auth_hub, "subtype=login&agent=user:alice")
    assert sorted(e["outcome"] for e in logins) == ["0", "0", "4"]
    assert all(e["type"]["system"] == DCM and e["type"]["code"] == "110114" for e in logins)
    assert all("110122" in _subtypes(e) for e in logins)
    assert {a["network"]["address"] for e in logins for a in e["agent"]} == {"127.0.0.1"}
    unknown = _events(auth_client, auth_hub, "subtype=110122&outcome=4&agent=client:app")
    assert any(e["outcomeDesc"] == "login: unknown username" for e in unknown)

    token_events = _events(auth_client, auth_hub, "subtype=token")
    by_outcome: dict[str, list[dict[str, Any]]] = {}
    for event in token_events:
        assert "ITI-71" in _subtypes(event)
        by_outcome.setdefault(event["outcome"], []).append(event)
    assert len(by_outcome["0"]) == 2 and len(by_outcome["4"]) == 1 and len(by_outcome["8"]) == 1
    details = {
        d["type"]: d["valueString"] for e in by_outcome["0"] for d in e["entity"][0]["detail"]
    }
    assert details["scope"] and details["grant_type"] in ("authorization_code", "refresh_token")
    assert {d["valueString"] for e in by_outcome["0"] for d in e["entity"][0]["detail"]} >= {
        "authorization_code",
        "refresh_token",
    }
    refused = by_outcome["4"][0]
    assert "invalid_grant" in refused["outcomeDesc"]
    assert any(a["name"] == "app" for a in refused["agent"])  # the client it claimed to be
    assert "already used" in by_outcome["8"][0]["outcomeDesc"]  # the refresh token replay

    decisions = _events(auth_client, auth_hub, "subtype=authorize")
    assert sorted(e["outcome"] for e in decisions) == ["0", "0", "4"]
    assert any("redirect_uri" in e["outcomeDesc"] for e in decisions if e["outcome"] == "4")
    introspection = _events(auth_client, auth_hub, "subtype=ITI-102")
    assert len(introspection) == 1 and introspection[0]["outcome"] == "0"
    revocation = _events(auth_client, auth_hub, "subtype=revoke")
    assert "access token revoked" in revocation[0]["outcomeDesc"]
    assert _events(auth_client, auth_hub, f"type={DCM}|110114&outcome=8")

    stored = orjson.dumps(list(auth_hub.db[COLLECTION].find({}, {"_id": 0}))).decode()
    for secret in secrets:
        assert secret not in stored


def test_every_bundle_entry_is_audited(auth_client: FlaskClient, auth_hub: Hub) -> None:
    clinical_data(auth_hub)
    register_app(auth_hub)
    alice = auth_hub.auth.issue_direct("app", "patient/*.cruds", user="alice", patient="a")
    headers = {"Authorization": f"Bearer {alice['access_token']}"}
    note = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "mood"},
        "subject": {"reference": "Patient/a"},
    }
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "POST", "url": "Observation"}, "resource": note},
            {"request": {"method": "GET", "url": "Observation/lab-a"}},
            {"request": {"method": "GET", "url": "Observation/lab-b"}},
            {"request": {"method": "GET", "url": "Observation?status=final"}},
        ],
    }
    answer = auth_client.post("/fhir", json=batch, headers=headers).get_json()
    created = answer["entry"][0]["response"]["location"].split("/_history")[0]
    transaction = {**batch, "type": "transaction", "entry": batch["entry"][:2]}
    answer = auth_client.post("/fhir", json=transaction, headers=headers).get_json()
    in_transaction = answer["entry"][0]["response"]["location"].split("/_history")[0]
    failed = {**batch, "type": "transaction", "entry": batch["entry"][:1] * 2}
    failed["entry"][1] = {"request": {"method": "DELETE", "url": "Observation/lab-b"}}
    assert auth_client.post("/fhir", json=failed, headers=headers).status_code == 404

    entries = _events(auth_client, auth_hub, "agent=user:alice&subtype=create")
    assert sorted(e["outcome"] for e in entries) == ["0", "0", "4"]  # batch, txn, failed txn
    [committed] = _events(auth_client, auth_hub, f"entity={in_transaction}")
    assert committed["outcome"] == "0" and " of transaction " in committed["outcomeDesc"]
    mine = _events(auth_client, auth_hub, f"entity={created}")
    assert (
        len(mine) == 1 and mine[0]["action"] == "C" and "Bundle.entry[0]" in mine[0]["outcomeDesc"]
    )
    read = _events(auth_client, auth_hub, "entity=Observation/lab-b&action=R")
    assert [e["outcome"] for e in read] == ["4"]  # hidden from alice: 404
    deleted = _events(auth_client, auth_hub, "entity=Observation/lab-b&action=D")
    assert [e["outcome"] for e in deleted] == ["4"]
    searches = _events(auth_client, auth_hub, "agent=user:alice&subtype=search-type&action=E")
    assert any("status=final" in e["outcomeDesc"] for e in searches)
    requests = _events(auth_client, auth_hub, "agent=user:alice&subtype=batch")
    assert len(requests) == 1  # and the Bundle requests themselves
    assert len(_events(auth_client, auth_hub, "agent=user:alice&subtype=transaction")) == 2
