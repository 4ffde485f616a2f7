"""Token introspection (RFC 7662, SMART token introspection): only an authenticated
confidential client may introspect, only its own tokens, and the answer holds only what
the two specifications name (issue 15 item 6)."""

from __future__ import annotations

import base64
from typing import Any

from flask.testing import FlaskClient

from fhirhub.hub import Hub
from tests.auth_helpers import (
    APP_SCOPES,
    REDIRECT,
    assertion,
    asymmetric_client,
    authorize_params,
    clinical_data,
    code_from,
    pkce,
    register_app,
    sign_in,
    token_form,
    url,
)

SCOPE = "launch/patient openid fhirUser offline_access patient/*.rs"
RFC7662_AND_SMART = {
    "active", "scope", "client_id", "exp", "iat", "iss", "aud", "token_type", "sub",
    "fhirUser", "patient", "encounter",
}  # fmt: skip


def _basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def _confidential_tokens(client: FlaskClient, hub: Hub) -> tuple[str, dict[str, Any]]:
    """A symmetric (client_secret_basic) app's secret and the tokens alice grants it."""
    secret = hub.auth.register_client(
        "app", "symmetric", redirect_uris=[REDIRECT], scope=APP_SCOPES
    )
    assert secret
    verifier, challenge = pkce()
    callback = sign_in(
        client, url("/auth/authorize", **authorize_params(hub, SCOPE, challenge)), "alice"
    )
    form = token_form(code_from(callback), verifier)
    response = client.post("/auth/token", data=form, headers=_basic("app", secret))
    assert response.status_code == 200, response.get_data(as_text=True)
    return secret, response.get_json()


def _introspect(client: FlaskClient, token: str, **kw: Any) -> Any:
    data = {"token": token, **kw.pop("data", {})}
    return client.post("/auth/introspect", data=data, **kw)


def test_bearer_tokens_and_public_clients_may_not_introspect(
    auth_client: FlaskClient, auth_hub: Hub
) -> None:
    clinical_data(auth_hub)
    register_app(auth_hub, client_id="public-app")
    victim = auth_hub.auth.issue_direct("public-app", "patient/*.rs", patient="b")
    attacker = auth_hub.auth.issue_direct("public-app", "patient/*.rs", patient="a")
    # The reproduction: any bearer token could introspect any other token.
    bearer = {"Authorization": f"Bearer {attacker['access_token']}"}
    refused = _introspect(auth_client, victim["access_token"], headers=bearer)
    assert refused.status_code == 401, refused.get_json()
    assert refused.get_json()["error"] == "invalid_client"
    assert "active" not in refused.get_json()
    # A public client has nothing to authenticate with: refused as well.
    public = _introspect(auth_client, victim["access_token"], data={"client_id": "public-app"})
    assert public.status_code == 401 and public.get_json()["error"] == "invalid_client"
    anonymous = _introspect(auth_client, victim["access_token"])
    assert anonymous.status_code == 401


def test_confidential_client_introspects_its_own_tokens_only(
    auth_client: FlaskClient, auth_hub: Hub
) -> None:
    clinical_data(auth_hub)
    register_app(auth_hub, client_id="other-app")
    secret, tokens = _confidential_tokens(auth_client, auth_hub)
    basic = _basic("app", secret)
    active = _introspect(auth_client, tokens["access_token"], headers=basic)
    assert active.status_code == 200
    body = active.get_json()
    assert body["active"] is True and body["client_id"] == "app" and body["patient"] == "a"
    assert body["scope"] == tokens["scope"] and body["token_type"] == "Bearer"
    assert body["fhirUser"].endswith("/Patient/a") and body["sub"] == "alice"
    assert set(body) <= RFC7662_AND_SMART, set(body) - RFC7662_AND_SMART
    assert active.headers["Cache-Control"] == "no-store"
    # client_secret_post works the same; a wrong secret is refused.
    posted = _introspect(
        auth_client, tokens["refresh_token"], data={"client_id": "app", "client_secret": secret}
    )
    assert posted.get_json()["active"] is True and "token_type" not in posted.get_json()
    wrong = _introspect(auth_client, tokens["access_token"], headers=_basic("app", "guess"))
    assert wrong.status_code == 401

    # Another client's token, an unknown one, a revoked one: all just inactive.
    foreign = auth_hub.auth.issue_direct("other-app", "patient/*.rs", patient="b")
    for token in (foreign["access_token"], "no-such-token"):
        answer = _introspect(auth_client, token, headers=basic)
        assert answer.status_code == 200 and answer.get_json() == {"active": False}
    revoked = auth_client.post(
        "/auth/revoke", data={"token": tokens["refresh_token"]}, headers=basic
    )
    assert revoked.status_code == 200
    gone = _introspect(auth_client, tokens["access_token"], headers=basic)
    assert gone.get_json() == {"active": False}
    missing = auth_client.post("/auth/introspect", data={}, headers=basic)
    assert missing.status_code == 400 and missing.get_json()["error"] == "invalid_request"


def test_backend_service_introspects_with_its_key(auth_client: FlaskClient, auth_hub: Hub) -> None:
    key = asymmetric_client(auth_hub)
    aud = auth_hub.auth.url("token")
    form = {
        "grant_type": "client_credentials",
        "scope": "system/*.rs",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    }
    issued = auth_client.post(
        "/auth/token", data={**form, "client_assertion": assertion(key, "backend", aud)}
    ).get_json()
    signed = {k: v for k, v in form.items() if k != "grant_type" and k != "scope"}
    answer = _introspect(
        auth_client,
        issued["access_token"],
        data={**signed, "client_assertion": assertion(key, "backend", aud)},
    ).get_json()
    assert answer["active"] is True and answer["sub"] == "backend"
    assert answer["scope"] == "system/*.rs" and "patient" not in answer
