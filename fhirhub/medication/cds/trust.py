"""Trusting CDS Clients (CDS Hooks 2.0 "Trusting CDS Clients"): every service call carries
`Authorization: Bearer <JWT>` signed with the client's private key (ES384 or RS384), with
`iss` (the client), `aud` (the service URL called), `exp` (at most five minutes ahead),
`iat`, `jti` (never reused) and optionally `sub` and `tenant`; header `kid` and optional
`jku`. Verified with joserfc (Authlib's JOSE library, as for SMART client assertions).

Trusted clients are configuration (FHIRHUB_CDS_CLIENTS: JSON, or @path to a JSON file),
validated with jsonschema: `iss`, optional `sub`, the client's public `jwks`, and the `jku`
URLs it may name. Keys are never fetched from a `jku` during a request (web requests do not
call out; a client-named URL fetched here would be a request-forgery path): a `jku` must be
one the configuration allows, and the keys are the configured JWK Set.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from jsonschema import Draft202012Validator

from fhirhub.fhir.errors import ConfigurationError, FhirError

ALGORITHMS = ["ES384", "RS384"]
MAX_LIFETIME = 300
CLOCK_SKEW = 30

CLIENTS_SCHEMA = Draft202012Validator(
    {
        "type": "array",
        "items": {
            "type": "object",
            "required": ["iss", "jwks"],
            "properties": {
                "iss": {"type": "string", "minLength": 1},
                "sub": {"type": "string", "minLength": 1},
                "jwks": {
                    "type": "object",
                    "required": ["keys"],
                    "properties": {"keys": {"type": "array", "minItems": 1}},
                },
                "jku": {"type": "array", "items": {"type": "string", "pattern": "^https?://"}},
            },
            "additionalProperties": False,
        },
    }
)


class JtiLog(Protocol):
    def first_use_of_assertion(self, client_id: str, jti: str, expires: datetime) -> bool: ...


class Unauthorized(FhirError):
    def __init__(self, message: str):
        super().__init__(message, 401, "login", headers={"WWW-Authenticate": "Bearer"})


@dataclass(frozen=True)
class TrustedClient:
    iss: str
    sub: str | None
    keys: KeySet
    jku: tuple[str, ...]


def load_clients(setting: str) -> dict[str, TrustedClient]:
    if not setting:
        return {}
    try:
        text = Path(setting[1:]).read_text() if setting.startswith("@") else setting
        data = json.loads(text)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"FHIRHUB_CDS_CLIENTS: {exc}") from None
    errors = list(CLIENTS_SCHEMA.iter_errors(data))
    if errors:
        raise ConfigurationError(f"FHIRHUB_CDS_CLIENTS: {errors[0].message}")
    clients = {}
    for item in data:
        try:
            keys = KeySet.import_key_set(item["jwks"])
        except (JoseError, ValueError, KeyError) as exc:
            raise ConfigurationError(f"FHIRHUB_CDS_CLIENTS {item['iss']}: jwks: {exc}") from None
        clients[item["iss"]] = TrustedClient(
            item["iss"], item.get("sub"), keys, tuple(item.get("jku") or ())
        )
    return clients


def _segment(token: str, index: int) -> dict[str, Any]:
    """An unverified JWT segment, only to choose the keys; nothing in it is trusted yet."""
    try:
        part = token.split(".")[index]
        data = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError):
        raise Unauthorized("the CDS Hooks authorization is not a JWT") from None
    if not isinstance(data, dict):
        raise Unauthorized("the CDS Hooks authorization is not a JWT")
    return data


def looks_like_client_jwt(token: str, clients: dict[str, TrustedClient]) -> bool:
    if token.count(".") != 2:
        return False
    try:
        return _segment(token, 1).get("iss") in clients
    except Unauthorized:
        return False


def verify(
    token: str, audience: str, clients: dict[str, TrustedClient], jtis: JtiLog
) -> dict[str, Any]:
    """The verified claims of a CDS Client's JWT, or 401."""
    header, unverified = _segment(token, 0), _segment(token, 1)
    client = clients.get(str(unverified.get("iss")))
    if client is None:
        raise Unauthorized("the JWT's iss is not a trusted CDS client")
    if header.get("alg") not in ALGORITHMS:
        raise Unauthorized(f"the JWT must be signed with {' or '.join(ALGORITHMS)}")
    if header.get("jku") is not None and header["jku"] not in client.jku:
        raise Unauthorized("the JWT's jku is not one configured for this client")
    try:
        claims = jwt.decode(token, client.keys, algorithms=ALGORITHMS).claims
    except (JoseError, ValueError) as exc:
        raise Unauthorized(f"the JWT's signature was not accepted: {exc}") from None
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if audience not in [str(a).rstrip("/") for a in audiences]:
        raise Unauthorized(f"the JWT's aud must be {audience}")
    if client.sub is not None and claims.get("sub") != client.sub:
        raise Unauthorized("the JWT's sub is not this client's")
    now = time.time()
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int | float) or not isinstance(iat, int | float):
        raise Unauthorized("the JWT needs exp and iat")
    if exp <= now - CLOCK_SKEW:
        raise Unauthorized("the JWT has expired")
    if exp > now + MAX_LIFETIME + CLOCK_SKEW or iat > now + CLOCK_SKEW:
        raise Unauthorized("the JWT's exp must be at most five minutes ahead")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise Unauthorized("the JWT needs a jti")
    keep_until = datetime.fromtimestamp(exp + CLOCK_SKEW, UTC)
    if not jtis.first_use_of_assertion(f"cds:{client.iss}", jti, keep_until):
        raise Unauthorized("the JWT's jti was already used (replay)")
    return dict(claims)
