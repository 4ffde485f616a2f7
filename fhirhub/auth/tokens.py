"""Issuing access, refresh and id tokens for a grant, and describing tokens (introspection).

Access and refresh tokens are opaque 256-bit random strings stored by hash: every request
looks its token up, so revocation takes effect at once in every worker. Only id_tokens are
JWTs (RS256 with a kid from the key ring), as OpenID Connect requires.
"""

from __future__ import annotations

import secrets
import time
from datetime import datetime, timedelta
from typing import Any

from fhirhub.auth.keys import KeyRing
from fhirhub.auth.scopes import REFRESH_SCOPES, Scopes
from fhirhub.config import Settings
from fhirhub.storage.auth_store import AuthStore, Record, now

# What a grant carries into every token issued from it.
GRANT_FIELDS = (
    "grant",
    "client_id",
    "scope",
    "patient",
    "encounter",
    "user",
    "fhir_user",
    "admin",
    "need_patient_banner",
)


def new_grant_id() -> str:
    return secrets.token_hex(16)


class TokenIssuer:
    def __init__(self, store: AuthStore, keys: KeyRing, settings: Settings):
        self.store = store
        self.keys = keys
        self.settings = settings

    def issue(
        self,
        grant: Record,
        *,
        rotated: Record | None = None,
        nonce: str | None = None,
        ttl: int | None = None,
    ) -> dict[str, Any]:
        """The token response body. `rotated`: the refresh token record a refresh used up;
        its successor keeps its scope and expiry (RFC 6749 section 6: the refresh token's
        scope does not narrow with the access token's; rotation does not extend a grant)."""
        scopes = Scopes.parse(grant["scope"])
        access = secrets.token_urlsafe(32)
        base = {k: grant.get(k) for k in GRANT_FIELDS}
        ttl = ttl or self.settings.auth_token_ttl
        self.store.put_token(
            access,
            {**base, "kind": "access", "issued": now(), "expires": now() + timedelta(seconds=ttl)},
        )
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ttl,
            "scope": str(scopes),
        }
        for key in ("patient", "encounter"):
            if grant.get(key):
                body[key] = grant[key]
        if grant.get("user") is not None:
            body["need_patient_banner"] = bool(grant.get("need_patient_banner"))
            body["smart_style_url"] = f"{self.settings.auth_base}/static/smart-style.json"
        if (
            grant.get("user")
            and "openid" in scopes
            and ("fhirUser" in scopes or "profile" in scopes)
        ):
            body["id_token"] = self.id_token(grant, scopes, nonce)
        if rotated is not None:
            successor = {**base, "scope": rotated["scope"]}
            body["refresh_token"] = self._refresh_token(successor, rotated["expires"])
        elif grant.get("user") and REFRESH_SCOPES & set(scopes.items):
            expires = now() + timedelta(seconds=self.settings.auth_refresh_ttl)
            body["refresh_token"] = self._refresh_token(base, expires)
        return body

    def _refresh_token(self, base: Record, expires: datetime) -> str:
        token = secrets.token_urlsafe(32)
        self.store.put_token(
            token, {**base, "kind": "refresh", "issued": now(), "expires": expires}
        )
        return token

    def id_token(self, grant: Record, scopes: Scopes, nonce: str | None) -> str:
        issued = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.settings.auth_base,
            "sub": grant["user"],
            "aud": grant["client_id"],
            "iat": issued,
            "exp": issued + self.settings.auth_token_ttl,
        }
        if "fhirUser" in scopes and grant.get("fhir_user"):
            claims["fhirUser"] = f"{self.settings.fhir_base}/{grant['fhir_user']}"
        if nonce:
            claims["nonce"] = nonce
        return self.keys.sign(claims)

    def describe(self, record: Record) -> dict[str, Any]:
        """RFC 7662 introspection response for a live token, trimmed to what RFC 7662 and
        SMART's token introspection page name: active, scope, client_id, exp, iat, iss,
        aud, token_type; sub as in the id_token (with openid; a backend client: its id);
        fhirUser with the fhirUser scope; the launch context (patient, encounter). Nothing
        internal (grant id, admin flag, login name unless it is the id_token's sub)."""
        scopes = Scopes.parse(record["scope"])
        body: dict[str, Any] = {
            "active": True,
            "scope": record["scope"],
            "client_id": record["client_id"],
            "exp": int(record["expires"].timestamp()),
            "iat": int(record["issued"].timestamp()),
            "iss": self.settings.auth_base,
            "aud": self.settings.fhir_base,
        }
        if record["kind"] == "access":
            body["token_type"] = "Bearer"
        if record.get("user") is None:
            body["sub"] = record["client_id"]
        elif "openid" in scopes:
            body["sub"] = record["user"]
        if record.get("fhir_user") and "fhirUser" in scopes:
            body["fhirUser"] = f"{self.settings.fhir_base}/{record['fhir_user']}"
        for key in ("patient", "encounter"):
            if record.get(key):
                body[key] = record[key]
        return body
