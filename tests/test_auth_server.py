"""The authorization server over the Flask test client: discovery, the code flow with PKCE,
refresh, introspection, revocation, and what each of them must refuse."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import KeySet

from fhirhub.hub import Hub
from fhirhub.storage.auth_store import CODES, TOKENS, AuthStore, now, secret_hash
from tests.auth_helpers import (
    authorize_params,
    clinical_data,
    code_from,
    pkce,
    register_app,
    sign_in,
    token_form,
    url,
)


def _token(client: FlaskClient, form: dict[str, str], status: int = 200) -> dict[str, Any]:
    response = client.post("/auth/token", data=form)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    body: dict[str, Any] = response.get_json()
    return body


def _code(client: FlaskClient, hub: Hub, scope: str, user: str = "alice", **kw: Any) -> tuple:
    verifier, challenge = pkce()
    callback = sign_in(
        client, url("/auth/authorize", **authorize_params(hub, scope, challenge)), user, **kw
    )
    return code_from(callback), verifier


def test_discovery_documents(auth_client: FlaskClient, auth_hub: Hub) -> None:
    response = auth_client.get("/fhir/.well-known/smart-configuration")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    config = response.get_json()
    for field in (
        "issuer",
        "jwks_uri",
        "authorization_endpoint",
        "token_endpoint",
        "grant_types_supported",
        "capabilities",
        "code_challenge_methods_supported",
        "token_endpoint_auth_methods_supported",
        "introspection_endpoint",
        "revocation_endpoint",
        "scopes_supported",
        "response_types_supported",
    ):
        assert field in config, field
    assert config["code_challenge_methods_supported"] == ["S256"]
    assert {"permission-v1", "permission-v2", "launch-ehr", "launch-standalone"} <= set(
        config["capabilities"]
    )
    assert config["token_endpoint"] == "http://testserver/auth/token"
    security = auth_client.get("/fhir/metadata").get_json()["rest"][0]["security"]
    uris = {e["url"]: e["valueUri"] for e in security["extension"][0]["extension"]}
    assert uris["authorize"] == config["authorization_endpoint"]
    assert uris["token"] == config["token_endpoint"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    openid = auth_client.get("/auth/.well-known/openid-configuration").get_json()
    assert openid["issuer"] == config["issuer"]
    keys = auth_client.get("/auth/jwks").get_json()["keys"]
    assert keys and all(k["kid"] and "d" not in k for k in keys)


def test_standalone_patient_flow_refresh_introspect_revoke(
    auth_client: FlaskClient, auth_hub: Hub
) -> None:
    clinical_data(auth_hub)
    register_app(auth_hub)
    scope = "launch/patient openid fhirUser offline_access patient/*.rs"
    code, verifier = _code(auth_client, auth_hub, scope)
    body = _token(auth_client, token_form(code, verifier))
    assert body["patient"] == "a"  # alice is Patient/a: picked without a picker
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0
    assert body["need_patient_banner"] is True and body["smart_style_url"]
    claims = jwt.decode(
        body["id_token"], KeySet.import_key_set(auth_client.get("/auth/jwks").get_json())
    ).claims
    assert claims["fhirUser"] == "http://testserver/fhir/Patient/a"
    assert claims["aud"] == "app" and claims["iss"] == "http://testserver/auth"
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    assert auth_client.get("/fhir/Patient/a", headers=bearer).status_code == 200

    narrower = _token(
        auth_client,
        {
            "grant_type": "refresh_token",
            "client_id": "app",
            "refresh_token": body["refresh_token"],
            "scope": "patient/Observation.rs",
        },
    )
    assert narrower["scope"] == "patient/Observation.rs"
    assert narrower["refresh_token"] != body["refresh_token"]  # rotated
    wider = _token(
        auth_client,
        {
            "grant_type": "refresh_token",
            "client_id": "app",
            "refresh_token": narrower["refresh_token"],
            "scope": "patient/*.cruds",
        },
        400,
    )
    assert wider["error"] == "invalid_scope"
    narrow_bearer = {"Authorization": f"Bearer {narrower['access_token']}"}
    assert auth_client.get("/fhir/Patient/a", headers=narrow_bearer).status_code == 403

    # Introspection is for confidential clients (tests/test_auth_introspection.py): this
    # public app's own bearer token is no client authentication.
    refused = auth_client.post(
        "/auth/introspect", data={"token": body["access_token"]}, headers=bearer
    )
    assert refused.status_code == 401 and refused.get_json()["error"] == "invalid_client"
    anonymous = auth_client.post("/auth/introspect", data={"token": body["access_token"]})
    assert anonymous.status_code == 401 and anonymous.get_json()["error"] == "invalid_client"

    revoked = auth_client.post(
        "/auth/revoke", data={"token": narrower["refresh_token"], "client_id": "app"}
    )
    assert revoked.status_code == 200
    # Revoking the refresh token ends the whole grant, access tokens included.
    assert auth_client.get("/fhir/Patient/a", headers=bearer).status_code == 401
    again = _token(
        auth_client,
        {"grant_type": "refresh_token", "client_id": "app", "refresh_token": body["refresh_token"]},
        400,
    )
    assert again["error"] == "invalid_grant"


def test_pkce_is_required_and_checked(auth_client: FlaskClient, auth_hub: Hub) -> None:
    clinical_data(auth_hub)
    register_app(auth_hub)
    scope = "launch/patient patient/*.rs"
    code, _ = _code(auth_client, auth_hub, scope)
    assert _token(auth_client, token_form(code, None), 400)["error"] == "invalid_grant"
    code, _ = _code(auth_client, auth_hub, scope)
    wrong = token_form(code, pkce()[0])
    assert _token(auth_client, wrong, 400)["error"] == "invalid_grant"
    # plain is refused at the authorization request, before anyone signs in
    verifier, _ = pkce()
    plain = authorize_params(auth_hub, scope, verifier, code_challenge_method="plain")
    response = auth_client.get(url("/auth/authorize", **plain))
    assert response.status_code == 302
    assert "error=invalid_request" in response.headers["Location"]
    missing = authorize_params(auth_hub, scope, "")
    del missing["code_challenge"], missing["code_challenge_method"]
    assert (
        "error=invalid_request"
        in auth_client.get(url("/auth/authorize", **missing)).headers["Location"]
    )


def test_code_rules_single_use_expiry_redirect_client(
    auth_client: FlaskClient, auth_hub: Hub
) -> None:
    clinical_data(auth_hub)
    register_app(auth_hub)
    scope = "launch/patient patient/*.rs"
    code, verifier = _code(auth_client, auth_hub, scope)
    first = _token(auth_client, token_form(code, verifier))
    replay = _token(auth_client, token_form(code, verifier), 400)
    assert replay["error"] == "invalid_grant"
    # the replay revoked what the first exchange issued
    bearer = {"Authorization": f"Bearer {first['access_token']}"}
    assert auth_client.get("/fhir/Patient/a", headers=bearer).status_code == 401

    code, verifier = _code(auth_client, auth_hub, scope)
    mismatch = token_form(code, verifier, redirect_uri="http://127.0.0.1:9/other")
    assert _token(auth_client, mismatch, 400)["error"] == "invalid_grant"

    code, verifier = _code(auth_client, auth_hub, scope)
    auth_hub.db[CODES].update_one(
        {"_id": secret_hash(code)}, {"$set": {"expires": now() - timedelta(seconds=1)}}
    )
    assert _token(auth_client, token_form(code, verifier), 400)["error"] == "invalid_grant"

    unknown = token_form("x", "y", client_id="nobody")
    assert _token(auth_client, unknown, 401)["error"] == "invalid_client"


def test_authorization_request_errors(auth_client: FlaskClient, auth_hub: Hub) -> None:
    register_app(auth_hub)
    _, challenge = pkce()
    params = authorize_params(
        auth_hub, "patient/*.rs", challenge, redirect_uri="http://evil.example/cb"
    )
    response = auth_client.get(url("/auth/authorize", **params))
    # never redirect to an unregistered URI: show the problem instead
    assert response.status_code == 400 and "Location" not in response.headers
    assert "redirect_uri" in response.get_data(as_text=True)
    wrong_aud = authorize_params(auth_hub, "patient/*.rs", challenge, aud="http://other/fhir")
    location = auth_client.get(url("/auth/authorize", **wrong_aud)).headers["Location"]
    assert (
        location.startswith("http://127.0.0.1:9/callback?error=invalid_request")
        and "state=" in location
    )
    no_state = authorize_params(auth_hub, "patient/*.rs", challenge)
    del no_state["state"]
    assert (
        "error=invalid_request"
        in auth_client.get(url("/auth/authorize", **no_state)).headers["Location"]
    )
    bad_login = auth_client.get(
        url("/auth/authorize", **authorize_params(auth_hub, "patient/*.rs", challenge))
    )
    request_id = bad_login.headers["Location"].split("req=")[1]
    wrong = auth_client.post(
        "/auth/login", data={"req": request_id, "username": "alice", "password": "x"}
    )
    assert wrong.status_code == 401 and "wrong password" in wrong.get_data(as_text=True)


def test_expired_access_token_and_bad_headers(auth_client: FlaskClient, auth_hub: Hub) -> None:
    clinical_data(auth_hub)
    register_app(auth_hub)
    token = auth_hub.auth.issue_direct("app", "user/*.rs", user="root")["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert auth_client.get("/fhir/Patient/b", headers=bearer).status_code == 200
    auth_hub.db[TOKENS].update_one(
        {"_id": secret_hash(token)}, {"$set": {"expires": now() - timedelta(seconds=1)}}
    )
    auth_hub.auth.store.forget_cached_tokens()  # the edit above bypassed the store
    expired = auth_client.get("/fhir/Patient/b", headers=bearer)
    assert expired.status_code == 401
    assert expired.get_json()["resourceType"] == "OperationOutcome"
    assert 'error="invalid_token"' in expired.headers["WWW-Authenticate"]
    none = auth_client.get("/fhir/Patient/b")
    assert none.status_code == 401 and none.headers["WWW-Authenticate"].startswith("Bearer")
    basic = auth_client.get("/fhir/Patient/b", headers={"Authorization": "Basic eDp5"})
    assert basic.status_code == 401


def test_token_lookups_are_cached_briefly(auth_client: FlaskClient, auth_hub: Hub) -> None:
    """Revocation here applies at once; one made by another process within the cache TTL."""
    clinical_data(auth_hub)
    register_app(auth_hub)
    issue = auth_hub.auth.issue_direct
    bearer = {"Authorization": f"Bearer {issue('app', 'user/*.rs', user='root')['access_token']}"}
    assert auth_client.get("/fhir/Patient/b", headers=bearer).status_code == 200
    other_process = AuthStore(auth_hub.db)
    token = bearer["Authorization"].split()[1]
    other_process.revoke_token(secret_hash(token))
    assert auth_client.get("/fhir/Patient/b", headers=bearer).status_code == 200
    time.sleep(auth_hub.settings.auth_token_cache_ms / 1000 + 0.1)
    assert auth_client.get("/fhir/Patient/b", headers=bearer).status_code == 401

    again = {"Authorization": f"Bearer {issue('app', 'user/*.rs', user='root')['access_token']}"}
    assert auth_client.get("/fhir/Patient/b", headers=again).status_code == 200
    auth_hub.auth.store.revoke_token(secret_hash(again["Authorization"].split()[1]))
    assert auth_client.get("/fhir/Patient/b", headers=again).status_code == 401


def test_consent_can_withhold_types(auth_client: FlaskClient, auth_hub: Hub) -> None:
    clinical_data(auth_hub)
    register_app(auth_hub)
    scope = "launch/patient patient/Patient.rs patient/Observation.rs patient/CarePlan.rs"
    code, verifier = _code(auth_client, auth_hub, scope, untick=("Observation",))
    body = _token(auth_client, token_form(code, verifier))
    assert "Observation" not in body["scope"] and "patient/CarePlan.rs" in body["scope"]
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    assert auth_client.get("/fhir/Observation/lab-a", headers=bearer).status_code == 403
    assert auth_client.get("/fhir/CarePlan/plan-a", headers=bearer).status_code == 200


def test_key_rotation_keeps_previous_key_published(auth_client: FlaskClient, auth_hub: Hub) -> None:
    first = auth_hub.auth.keys.current.kid
    second = auth_hub.auth.keys.rotate()
    kids = [k["kid"] for k in auth_client.get("/auth/jwks").get_json()["keys"]]
    assert kids == [second, first]
    assert auth_hub.auth.keys.current.kid == second
    token = auth_hub.auth.keys.sign({"sub": "x"})
    published = KeySet.import_key_set(auth_client.get("/auth/jwks").get_json())
    assert jwt.decode(token, published).header["kid"] == second


def test_cors_on_api_and_token_endpoints(auth_client: FlaskClient) -> None:
    refused = auth_client.get("/fhir/Patient", headers={"Origin": "https://app.example"})
    assert refused.status_code == 401 and refused.headers["Access-Control-Allow-Origin"] == "*"
    assert "WWW-Authenticate" in refused.headers["Access-Control-Expose-Headers"]
    preflight = auth_client.options("/auth/token", headers={"Origin": "https://app.example"})
    assert preflight.status_code == 200
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]


def test_operator_commands(auth_client: FlaskClient, auth_hub: Hub) -> None:
    from click.testing import CliRunner

    from fhirhub.cli import main

    env = {
        "MONGODB_URI": auth_hub.settings.effective_mongodb_uri,
        "FHIRHUB_DB_NAME": auth_hub.settings.db_name,
        "FHIRHUB_CACHE_DIR": str(auth_hub.settings.cache_dir),
        "FHIRHUB_BASE_URL": auth_hub.settings.fhir_base,
    }
    runner = CliRunner()

    def run(*args: str, stdin: str | None = None) -> str:
        result = runner.invoke(main, list(args), env=env, input=stdin)
        assert result.exit_code == 0, result.output
        return result.output

    clinical_data(auth_hub)
    run("user", "add", "nurse", "--fhir-user", "Practitioner/spec", stdin="pw-123\npw-123\n")
    added = run("client", "add", "cli", "--kind", "symmetric", "--scope", "user/*.rs")
    assert "client secret (shown once)" in added
    token = run("token", "issue", "--client", "cli", "--user", "nurse", "--scope", "user/*.rs")
    bearer = {"Authorization": f"Bearer {token.strip()}"}
    assert auth_client.get("/fhir/CarePlan/plan-a", headers=bearer).status_code == 200
    assert auth_client.get("/fhir/CarePlan/plan-b", headers=bearer).status_code == 404
    refused = runner.invoke(
        main, ["token", "issue", "--client", "cli", "--scope", "system/*.rs"], env=env
    )
    assert refused.exit_code == 1 and "fhirhub: error:" in refused.output
    assert "nurse\tPractitioner/spec" in run("user", "list")
    assert "new signing key" in run("token", "rotate-keys")
