"""Registered clients and client authentication at the token endpoint.

Kinds: public (no secret, PKCE protects the code), symmetric (client_secret_basic/post) and
asymmetric (private_key_jwt, SMART backend services and confidential-asymmetric apps).
authlib's assertion support leaves jti replay and key selection to the caller, so the
assertion checks here are explicit: signature by one of the client's registered keys with
RS384/ES384, iss = sub = client_id, aud = the token URL, exp at most five minutes ahead,
and a jti never seen before.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import orjson
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from fhirhub.auth.errors import OAuthError, invalid_client, invalid_request
from fhirhub.storage.auth_store import AuthStore, Record, secret_hash

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ["RS384", "ES384"]
MAX_ASSERTION_LIFETIME = 300
CLOCK_SKEW = 30
KINDS = ("public", "symmetric", "asymmetric")
AUTH_METHODS = {
    "public": "none",
    "symmetric": "client_secret_basic",
    "asymmetric": "private_key_jwt",
}


def new_client(
    client_id: str,
    kind: str,
    *,
    redirect_uris: list[str],
    scope: str,
    name: str = "",
    jwks: dict[str, Any] | None = None,
    jwks_uri: str | None = None,
    launch_uri: str | None = None,
) -> tuple[Record, str | None]:
    """(the record to store, the client secret to hand out once for symmetric clients)."""
    if kind not in KINDS:
        raise ValueError(f"client kind must be one of {', '.join(KINDS)}")
    if kind == "asymmetric" and not (jwks and jwks.get("keys")):
        raise ValueError("an asymmetric client needs a JWKS with at least one public key")
    secret = secrets.token_urlsafe(32) if kind == "symmetric" else None
    record: Record = {
        "_id": client_id,
        "name": name or client_id,
        "kind": kind,
        "redirect_uris": redirect_uris,
        "scope": scope,
        "secret_hash": secret_hash(secret) if secret else None,
        "jwks": jwks,
        "jwks_uri": jwks_uri,
        "launch_uri": launch_uri,
    }
    return record, secret


@dataclass(frozen=True)
class ClientCredentials:
    """What the token request carried to identify and authenticate its client."""

    client_id: str | None
    secret: str | None
    assertion: str | None

    @classmethod
    def from_request(cls, form: dict[str, str], authorization: str | None) -> ClientCredentials:
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:].strip()).decode()
                basic_id, _, basic_secret = decoded.partition(":")
            except (ValueError, UnicodeDecodeError):
                raise invalid_client("malformed Basic authorization") from None
            if client_id and client_id != unquote(basic_id):
                raise invalid_request("client_id differs from the Basic credentials")
            client_id, secret = unquote(basic_id), unquote(basic_secret)
        assertion = None
        if form.get("client_assertion") or form.get("client_assertion_type"):
            if form.get("client_assertion_type") != ASSERTION_TYPE:
                raise invalid_client(f"client_assertion_type must be {ASSERTION_TYPE}")
            assertion = form.get("client_assertion")
        return cls(client_id, secret, assertion)


class ClientAuthenticator:
    def __init__(self, store: AuthStore, token_url: str):
        self.store = store
        self.token_url = token_url

    def authenticate(self, creds: ClientCredentials) -> Record:
        if creds.assertion:
            return self._by_assertion(creds.assertion, creds.client_id)
        if not creds.client_id:
            raise invalid_client("no client identification given")
        client = self.store.client(creds.client_id)
        if client is None:
            raise invalid_client("unknown client")
        if client["kind"] == "public":
            if creds.secret:
                raise invalid_client("a public client has no secret")
            return client
        if client["kind"] == "asymmetric":
            raise invalid_client("this client authenticates with private_key_jwt")
        if not creds.secret or not hmac.compare_digest(
            secret_hash(creds.secret), str(client.get("secret_hash"))
        ):
            raise invalid_client("client authentication failed")
        return client

    def _by_assertion(self, assertion: str, client_id: str | None) -> Record:
        claims = _unverified_claims(assertion)
        issuer = claims.get("iss")
        if not isinstance(issuer, str) or claims.get("sub") != issuer:
            raise invalid_client("client assertion must have iss = sub = client_id")
        if client_id and client_id != issuer:
            raise invalid_client("client_id differs from the assertion's issuer")
        client = self.store.client(issuer)
        if client is None or client["kind"] != "asymmetric" or not client.get("jwks"):
            raise invalid_client("unknown client or not registered for private_key_jwt")
        try:
            keys = KeySet.import_key_set(client["jwks"])
            verified = jwt.decode(assertion, keys, algorithms=ASSERTION_ALGORITHMS).claims
        except (JoseError, ValueError) as exc:
            raise invalid_client(f"client assertion signature not accepted: {exc}") from None
        self._check_claims(issuer, verified)
        return client

    def _check_claims(self, client_id: str, claims: dict[str, Any]) -> None:
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.token_url not in audiences:
            raise invalid_client(f"client assertion aud must be {self.token_url}")
        exp, current = claims.get("exp"), time.time()
        if not isinstance(exp, int | float):
            raise invalid_client("client assertion needs exp")
        if exp <= current - CLOCK_SKEW:
            raise invalid_client("client assertion has expired")
        if exp > current + MAX_ASSERTION_LIFETIME + CLOCK_SKEW:
            raise invalid_client("client assertion exp must be at most five minutes ahead")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise invalid_client("client assertion needs a jti")
        keep_until = datetime.fromtimestamp(exp + CLOCK_SKEW, UTC)
        if not self.store.first_use_of_assertion(client_id, jti, keep_until):
            raise invalid_client("client assertion jti was already used (replay)")


def _unverified_claims(token: str) -> dict[str, Any]:
    """Only to find which client's keys to verify with; nothing here is trusted."""
    try:
        payload = token.split(".")[1]
        data = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        raise invalid_client("client assertion is not a JWT") from None
    if not isinstance(data, dict):
        raise invalid_client("client assertion is not a JWT")
    return data


def claimed_client_id(form: dict[str, str], authorization: str | None) -> str | None:
    """The client a token request says it is, unverified: for the audit log of refusals."""
    try:
        creds = ClientCredentials.from_request(form, authorization)
        if creds.client_id or not creds.assertion:
            return creds.client_id
        issuer = _unverified_claims(creds.assertion).get("iss")
    except OAuthError:
        return form.get("client_id")
    return issuer if isinstance(issuer, str) else None
