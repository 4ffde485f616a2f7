"""Shared set-up for the SMART tests: clients, users, clinical data, the sign-in forms."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from fhirhub.auth.scopes import Scopes
from fhirhub.hub import Hub

REDIRECT = "http://127.0.0.1:9/callback"
APP_SCOPES = (
    "launch launch/patient openid fhirUser profile offline_access online_access "
    "patient/*.cruds user/*.cruds patient/*.read patient/*.write user/*.read user/*.write "
    "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
)
PASSWORD = "correct horse battery staple"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode().rstrip("=")


def register_app(hub: Hub, redirect_uri: str = REDIRECT, client_id: str = "app") -> None:
    hub.auth.register_client(client_id, "public", redirect_uris=[redirect_uri], scope=APP_SCOPES)


def asymmetric_client(hub: Hub, client_id: str = "backend", alg: str = "RS384") -> Any:
    """Register a backend-services client; returns its private key."""
    if alg == "ES384":
        key: Any = ECKey.generate_key("P-384", parameters={"kid": f"{client_id}-es"}, private=True)
    else:
        key = RSAKey.generate_key(2048, parameters={"kid": f"{client_id}-rs"}, private=True)
    jwks = {"keys": [{**key.as_dict(private=False), "alg": alg}]}
    hub.auth.register_client(
        client_id, "asymmetric", redirect_uris=[], scope="system/*.rs system/*.cruds", jwks=jwks
    )
    return key


def assertion(key: Any, client_id: str, aud: str, alg: str = "RS384", **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": client_id, "sub": client_id, "aud": aud, "exp": now + 240, "iat": now}
    body["jti"] = secrets.token_hex(16)
    body.update(claims)
    return jwt.encode({"alg": alg, "kid": key.kid, "typ": "JWT"}, body, key, algorithms=[alg])


def clinical_data(hub: Hub) -> dict[str, str]:
    """Two patients, a specialist on one care team, observations of two categories, a
    shared care plan each. Written without a policy (as an import would)."""
    service = hub.resources
    ids: dict[str, str] = {}

    def put(resource: dict[str, Any]) -> str:
        stored = service.update(resource["resourceType"], resource["id"], resource).stored
        return f"{stored.resource_type}/{stored.resource_id}"

    for pid, family in (("a", "Alpha"), ("b", "Beta")):
        ids[f"patient_{pid}"] = put(
            {"resourceType": "Patient", "id": pid, "name": [{"family": family, "given": ["Pat"]}]}
        )
        for cat in ("laboratory", "vital-signs"):
            ids[f"{cat}_{pid}"] = put(_observation(f"{cat[:3]}-{pid}", pid, cat))
        ids[f"careplan_{pid}"] = put(
            {
                "resourceType": "CarePlan",
                "id": f"plan-{pid}",
                "status": "active",
                "intent": "plan",
                "subject": {"reference": f"Patient/{pid}"},
            }
        )
    put({"resourceType": "Practitioner", "id": "spec", "name": [{"family": "Heart"}]})
    put({"resourceType": "Practitioner", "id": "other", "name": [{"family": "Elsewhere"}]})
    put(
        {
            "resourceType": "CareTeam",
            "id": "team-a",
            "status": "active",
            "subject": {"reference": "Patient/a"},
            "participant": [{"member": {"reference": "Practitioner/spec"}}],
        }
    )
    hub.auth.add_user("alice", PASSWORD, fhir_user="Patient/a")
    hub.auth.add_user("drheart", PASSWORD, fhir_user="Practitioner/spec")
    hub.auth.add_user("root", PASSWORD, admin=True)
    return ids


def _observation(oid: str, pid: str, category: str) -> dict[str, Any]:
    system = "http://terminology.hl7.org/CodeSystem/observation-category"
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [{"coding": [{"system": system, "code": category}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": f"Patient/{pid}"},
    }


def authorize_params(hub: Hub, scope: str, challenge: str, **extra: str) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": "app",
        "redirect_uri": REDIRECT,
        "scope": scope,
        "state": secrets.token_hex(8),
        "aud": hub.settings.fhir_base,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(extra)
    return params


def sign_in(
    http: Any,
    authorize_url: str,
    user: str,
    *,
    patient: str | None = None,
    untick: tuple[str, ...] = (),
) -> str:
    """Walk the sign-in forms over HTTP (Flask test client or httpx); returns the final
    redirect (the client's redirect_uri with code and state, or an error)."""
    location = _location(http.get(authorize_url), authorize_url)
    request_id = parse_qs(urlsplit(location).query)["req"][0]
    response = http.post(
        urljoin(location, "/auth/login"),
        data={"req": request_id, "username": user, "password": PASSWORD},
    )
    location = _location(http.get(_location(response, location)), location)
    if "/auth/pick" in location:
        response = http.post(location.split("?")[0], data={"req": request_id, "patient": patient})
        location = _location(response, location)
    pending = http.get(location)
    assert pending.status_code == 200, pending
    record_scope = _scope_of(authorize_url)
    kept = [t for t in _types(record_scope) if t not in untick]
    response = http.post(
        location.split("?")[0],
        data={"req": request_id, "decision": "allow", "type": kept},
    )
    return _location(response, location)


def _location(response: Any, base: str) -> str:
    assert response.status_code in (302, 303), (response.status_code, response.headers)
    return urljoin(base, response.headers["Location"])


def _scope_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["scope"][0]


def _types(scope: str) -> list[str]:
    return sorted({r.resource_type for r in Scopes.parse(scope).rules})


def code_from(callback: str) -> str:
    query = parse_qs(urlsplit(callback).query)
    assert "code" in query, callback
    return query["code"][0]


def token_form(code: str, verifier: str | None, **extra: str) -> dict[str, str]:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    form["client_id"] = "app"
    if verifier is not None:
        form["code_verifier"] = verifier
    form.update(extra)
    return form


def url(path: str, **params: str) -> str:
    return f"{path}?{urlencode(params)}"
