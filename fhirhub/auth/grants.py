"""The token endpoint's grants, introspection and revocation (RFC 6749, 7636, 7662, 7009).

PKCE is checked for every client, public or confidential, and only S256 is accepted when
the code is requested, so a code is useless without the verifier (authlib checks verifiers
only for public clients by default; that is why this is explicit here).
"""

from __future__ import annotations

import hmac
from typing import Any, NamedTuple, NoReturn

from authlib.oauth2.rfc7636 import create_s256_code_challenge

from fhirhub.auth.clients import ClientAuthenticator, ClientCredentials
from fhirhub.auth.errors import (
    OAuthError,
    invalid_client,
    invalid_grant,
    invalid_request,
    invalid_scope,
)
from fhirhub.auth.scopes import ScopeError, Scopes
from fhirhub.auth.tokens import GRANT_FIELDS, TokenIssuer, new_grant_id
from fhirhub.storage.auth_store import AuthStore, Record, now, secret_hash


class Answer(NamedTuple):
    """A response body and the grant it concerns (for introspection: the caller's), so the
    audit log can record who without the views looking tokens up again."""

    body: dict[str, Any]
    grant: Record


class TokenEndpoint:
    def __init__(self, store: AuthStore, clients: ClientAuthenticator, issuer: TokenIssuer):
        self.store = store
        self.clients = clients
        self.issuer = issuer

    def token(self, form: dict[str, str], authorization: str | None) -> Answer:
        grant_type = form.get("grant_type")
        client = self.clients.authenticate(ClientCredentials.from_request(form, authorization))
        if grant_type == "authorization_code":
            return self._authorization_code(client, form)
        if grant_type == "refresh_token":
            return self._refresh(client, form)
        if grant_type == "client_credentials":
            return self._client_credentials(client, form)
        raise OAuthError("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")

    def _authorization_code(self, client: Record, form: dict[str, str]) -> Answer:
        code = form.get("code")
        if not code:
            raise invalid_request("code is required")
        record, first_use = self.store.take_code(code)
        if record is None:
            raise invalid_grant("unknown authorization code")
        if not first_use:
            # RFC 6749 4.1.2: a replayed code revokes what was issued for it.
            self.store.revoke_grant(record["grant"])
            error = invalid_grant("authorization code was already used")
            raise error.alarming(grant=record["grant"], user=record.get("user"))
        if record["expires"] <= now():
            raise invalid_grant("authorization code has expired")
        if record["client_id"] != client["_id"]:
            raise invalid_grant("authorization code was issued to another client")
        if form.get("redirect_uri") != record["redirect_uri"]:
            raise invalid_grant("redirect_uri differs from the authorization request")
        verifier = form.get("code_verifier")
        if not verifier:
            raise invalid_grant("code_verifier is required (PKCE)")
        if not hmac.compare_digest(create_s256_code_challenge(verifier), record["challenge"]):
            raise invalid_grant("code_verifier does not match the code_challenge")
        grant = {k: record.get(k) for k in GRANT_FIELDS}
        return Answer(self.issuer.issue(grant, nonce=record.get("nonce")), grant)

    def _refresh(self, client: Record, form: dict[str, str]) -> Answer:
        """Refresh-token rotation (OAuth 2.0 Security BCP 4.14.2): every refresh returns a new
        refresh token and uses up the old one. An old one coming back means two parties hold
        it, one of them likely a thief, so the whole grant family is revoked."""
        token = form.get("refresh_token")
        record = self.store.token_record(token) if token else None
        if record is None or record["kind"] != "refresh":
            raise invalid_grant("refresh token is invalid, expired or revoked")
        if record.get("rotated"):
            self._reused(record)
        if record.get("revoked") or record["expires"] <= now():
            raise invalid_grant("refresh token is invalid, expired or revoked")
        if record["client_id"] != client["_id"]:
            raise invalid_grant("refresh token was issued to another client")
        grant = {k: record.get(k) for k in GRANT_FIELDS}
        if form.get("scope"):
            try:
                requested = Scopes.parse(form["scope"])
            except ScopeError as exc:
                raise invalid_scope(str(exc)) from None
            if not requested.within(Scopes.parse(record["scope"])):
                raise invalid_scope("a refresh may only narrow the originally granted scope")
            grant["scope"] = str(requested)
        if not self.store.first_use_of_refresh(str(record["_id"]), record["expires"]):
            self._reused(record)  # a concurrent refresh with the same token won the race
        return Answer(self.issuer.issue(grant, rotated=record), grant)

    def _reused(self, record: Record) -> NoReturn:
        self.store.revoke_grant(record["grant"])
        error = invalid_grant("refresh token was already used; the grant is revoked")
        raise error.alarming(grant=record["grant"], user=record.get("user"))

    def _client_credentials(self, client: Record, form: dict[str, str]) -> Answer:
        if client["kind"] != "asymmetric":
            raise OAuthError(
                "unauthorized_client", "client_credentials needs a private_key_jwt client"
            )
        try:
            requested = Scopes.parse(form.get("scope"))
        except ScopeError as exc:
            raise invalid_scope(str(exc)) from None
        granted = requested.granted_by(Scopes.parse(client["scope"]))
        system_only = Scopes.parse(" ".join(r.text for r in granted.rules if r.context == "system"))
        if not system_only.items:
            raise invalid_scope("backend services need system/ scopes registered for the client")
        grant: Record = dict.fromkeys(GRANT_FIELDS)
        grant.update(grant=new_grant_id(), client_id=client["_id"], scope=str(system_only))
        return Answer(self.issuer.issue(grant), grant)

    # -- introspection and revocation --------------------------------------------------------

    def introspect(self, form: dict[str, str], authorization: str | None) -> Answer:
        """RFC 7662. Only an authenticated confidential client may ask (section 2.1: the
        endpoint must not let anyone probe tokens), and it learns only about tokens issued
        to itself: anyone else's token, unknown, expired or revoked are all
        {"active": false} (section 2.2), so the answer never tells a client that a token it
        found or stole is alive. The one resource server fhirhub has is its own FHIR API,
        which looks tokens up directly (README "SMART": introspection)."""
        client = self._caller(form, authorization)
        caller: Record = {"client_id": client["_id"]}
        token = form.get("token")
        if not token:
            raise invalid_request("token is required")
        record = self.store.token(token)
        if record is None or record["client_id"] != client["_id"]:
            return Answer({"active": False}, caller)
        return Answer(self.issuer.describe(record), caller)

    def revoke(self, form: dict[str, str], authorization: str | None) -> Record | None:
        """The record of the token revoked (None when nothing happened), for the audit log."""
        client = self.clients.authenticate(ClientCredentials.from_request(form, authorization))
        token = form.get("token")
        if not token:
            raise invalid_request("token is required")
        record = self.store.token(token)
        # RFC 7009 2.2: unknown or foreign tokens still get 200, and nothing happens.
        if record is None or record["client_id"] != client["_id"]:
            return None
        if record["kind"] == "refresh":
            self.store.revoke_grant(record["grant"])
        else:
            self.store.revoke_token(secret_hash(token))
        return record

    def _caller(self, form: dict[str, str], authorization: str | None) -> Record:
        """The introspecting client, authenticated as at the token endpoint
        (client_secret_basic, client_secret_post or private_key_jwt). A bearer token is no
        client authentication, and a public client has no credentials to prove who it is."""
        if authorization and authorization.lower().startswith("bearer "):
            raise invalid_client(
                "introspection needs client authentication (client_secret_basic, "
                "client_secret_post or private_key_jwt), not a bearer token"
            )
        client = self.clients.authenticate(ClientCredentials.from_request(form, authorization))
        if client["kind"] == "public":
            raise invalid_client("introspection is for confidential clients; this one is public")
        return client
