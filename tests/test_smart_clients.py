"""Real client libraries against the server over real HTTP: the SMART client fhirclient
(standalone launch, EHR launch) and authlib's OAuth 2 client (code flow with PKCE,
backend services with private_key_jwt), plus the backend-services negatives."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session as OAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
from fhirclient import client as smart_client
from fhirclient.models.observation import Observation
from fhirclient.models.patient import Patient

from fhirhub.hub import Hub
from tests.auth_helpers import (
    APP_SCOPES,
    assertion,
    asymmetric_client,
    clinical_data,
    code_from,
    pkce,
    sign_in,
)

CALLBACK = "/healthz"  # any page on the server will do as the app's landing page


def _setup(hub: Hub) -> str:
    clinical_data(hub)
    redirect = hub.settings.fhir_base.removesuffix("/fhir") + CALLBACK
    hub.auth.register_client("app", "public", redirect_uris=[redirect], scope=APP_SCOPES)
    return redirect


def test_fhirclient_standalone_launch_with_patient_picker(live_server: Hub) -> None:
    redirect = _setup(live_server)
    settings = {
        "app_id": "app",
        "api_base": live_server.settings.fhir_base,
        "redirect_uri": redirect,
        "scope": "openid fhirUser user/*.rs",
    }
    smart = smart_client.FHIRClient(settings=settings)
    authorize_url = smart.authorize_url  # reads the oauth-uris from /metadata
    assert "code_challenge_method=S256" in authorize_url
    with httpx.Client() as browser:
        callback = sign_in(browser, authorize_url, "drheart", patient="a")
    smart.handle_callback(callback)
    assert smart.ready and smart.patient_id == "a"
    patient = Patient.read("a", smart.server)
    assert patient.name[0].family == "Alpha"
    search = Observation.where(struct={"subject": "Patient/a"}).perform_resources_iter(smart.server)
    assert sorted(o.id for o in search) == ["lab-a", "vit-a"]
    # the specialist is not on Beta's care team
    others = Observation.where(struct={"subject": "Patient/b"})
    assert list(others.perform_resources_iter(smart.server)) == []


def test_fhirclient_ehr_launch(live_server: Hub) -> None:
    redirect = _setup(live_server)
    launch = live_server.auth.flow.new_launch("b", encounter=None)
    smart = smart_client.FHIRClient(
        settings={
            "app_id": "app",
            "api_base": live_server.settings.fhir_base,
            "redirect_uri": redirect,
            "launch_token": launch,
            "scope": "patient/*.rs",
        }
    )
    with httpx.Client() as browser:
        callback = sign_in(browser, smart.authorize_url, "root")
    smart.handle_callback(callback)
    assert smart.patient_id == "b"
    assert smart.launch_context["need_patient_banner"] is False
    assert Patient.read("b", smart.server).name[0].family == "Beta"


def test_authlib_code_flow_with_pkce_and_refresh(live_server: Hub) -> None:
    redirect = _setup(live_server)
    base = live_server.settings.fhir_base
    config = httpx.get(f"{base}/.well-known/smart-configuration").json()
    verifier, _ = pkce()
    with OAuth2Client(
        "app",
        redirect_uri=redirect,
        scope="launch/patient offline_access patient/*.rs",
        code_challenge_method="S256",
    ) as oauth:
        uri, state = oauth.create_authorization_url(
            config["authorization_endpoint"], code_verifier=verifier, aud=base
        )
        with httpx.Client() as browser:
            callback = sign_in(browser, uri, "alice")
        token = oauth.fetch_token(
            config["token_endpoint"], authorization_response=callback, code_verifier=verifier
        )
        assert token["patient"] == "a" and token["refresh_token"]
        assert oauth.get(f"{base}/Observation/lab-a").status_code == 200
        assert oauth.get(f"{base}/Observation/lab-b").status_code == 404  # hidden, as missing
        refreshed = oauth.refresh_token(config["token_endpoint"])
        assert refreshed["access_token"] != token["access_token"]
        assert refreshed["refresh_token"] != token["refresh_token"]  # rotated
        assert oauth.get(f"{base}/Patient/a").status_code == 200
    assert state in callback


class FiveMinuteJWT(PrivateKeyJWT):
    """authlib signs assertions valid for an hour by default; SMART allows five minutes."""

    def sign(self, auth: Any, token_endpoint: str) -> str:
        return str(
            private_key_jwt_sign(
                auth.client_secret, auth.client_id, token_endpoint, alg=self.alg, expires_in=300
            )
        )


def test_authlib_backend_services(live_server: Hub) -> None:
    _setup(live_server)
    key = asymmetric_client(live_server, "backend", "RS384")
    token_url = f"{live_server.settings.auth_base}/token"
    base = live_server.settings.fhir_base
    with OAuth2Client(
        "backend", key, token_endpoint_auth_method="private_key_jwt", scope="system/*.rs"
    ) as oauth:
        oauth.register_client_auth_method(FiveMinuteJWT(token_url, alg="RS384"))
        token = oauth.fetch_token(token_url, grant_type="client_credentials")
        assert "refresh_token" not in token and token["scope"] == "system/*.rs"
        assert token["expires_in"] > 0
        assert oauth.get(f"{base}/Patient/b").status_code == 200
        assert oauth.post(f"{base}/Patient", json={"resourceType": "Patient"}).status_code == 403
    # authlib's default assertion lives an hour: refused
    with OAuth2Client(
        "backend", key, token_endpoint_auth_method="private_key_jwt", scope="system/*.rs"
    ) as default:
        default.register_client_auth_method(PrivateKeyJWT(token_url, alg="RS384"))
        with pytest.raises(OAuthError) as refused:
            default.fetch_token(token_url, grant_type="client_credentials")
        assert refused.value.error == "invalid_client"
        assert "five minutes" in str(refused.value.description)


def test_backend_assertion_negatives(live_server: Hub) -> None:
    _setup(live_server)
    rsa = asymmetric_client(live_server, "backend", "RS384")
    ec = asymmetric_client(live_server, "backend-ec", "ES384")
    token_url = f"{live_server.settings.auth_base}/token"

    def request(signed: str, scope: str = "system/*.rs") -> httpx.Response:
        return httpx.post(
            token_url,
            data={
                "grant_type": "client_credentials",
                "scope": scope,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": signed,
            },
        )

    good = assertion(rsa, "backend", token_url)
    assert request(good).status_code == 200
    replay = request(good)
    assert replay.status_code == 401 and "replay" in replay.json()["error_description"]
    assert request(assertion(ec, "backend-ec", token_url, alg="ES384")).status_code == 200
    wrong_aud = request(assertion(rsa, "backend", "http://elsewhere/token"))
    assert wrong_aud.status_code == 401
    expired = request(assertion(rsa, "backend", token_url, exp=int(time.time()) - 120))
    assert expired.status_code == 401
    too_long = request(assertion(rsa, "backend", token_url, exp=int(time.time()) + 900))
    assert too_long.status_code == 401
    impostor = request(assertion(ec, "backend", token_url, alg="ES384"))  # wrong client's key
    assert impostor.status_code == 401
    rs256 = request(assertion(rsa, "backend", token_url, alg="RS256"))
    assert rs256.status_code == 401
    user_scope = request(assertion(rsa, "backend", token_url), scope="user/*.rs")
    assert user_scope.status_code == 400 and user_scope.json()["error"] == "invalid_scope"


def test_confidential_symmetric_client(live_server: Hub) -> None:
    redirect = _setup(live_server)
    secret = live_server.auth.register_client(
        "webapp", "symmetric", redirect_uris=[redirect], scope="user/*.rs openid fhirUser"
    )
    assert secret
    verifier, challenge = pkce()
    params = {
        "response_type": "code",
        "client_id": "webapp",
        "redirect_uri": redirect,
        "scope": "user/*.rs",
        "state": "s1",
        "aud": live_server.settings.fhir_base,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    authorize = f"{live_server.settings.auth_base}/authorize?{httpx.QueryParams(params)}"
    with httpx.Client() as browser:
        code = code_from(sign_in(browser, authorize, "root"))
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect}
    token_url = f"{live_server.settings.auth_base}/token"
    no_secret = httpx.post(
        token_url, data={**form, "client_id": "webapp", "code_verifier": verifier}
    )
    assert no_secret.status_code == 401
    ok = httpx.post(token_url, data={**form, "code_verifier": verifier}, auth=("webapp", secret))
    assert ok.status_code == 200, ok.text
    assert ok.headers["cache-control"] == "no-store"
