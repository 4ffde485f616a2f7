"""The authorization request, step by step: validate, log in, pick a patient, consent, code.

Each step is bound to the browser that logged in: the pending request stores the hash of a
random session value that only that browser holds in an HttpOnly cookie, so a leaked
request id cannot be finished by someone else. Errors before the redirect_uri is known to
be the client's own are shown as a page, never redirected (RFC 6749 4.1.2.1).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from fhirhub.auth.passwords import dummy_hash, verify_password
from fhirhub.auth.scopes import ScopeError, Scopes
from fhirhub.auth.throttle import LoginThrottle
from fhirhub.auth.tokens import new_grant_id
from fhirhub.config import Settings
from fhirhub.storage.auth_store import CODES, LAUNCHES, REQUESTS, AuthStore, Record, now
from fhirhub.storage.auth_store import secret_hash as hashed

PENDING_MINUTES = 10
CHALLENGE = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")


class PageError(Exception):
    """Shown to the user; the client is unknown or its redirect_uri is not trusted."""


@dataclass
class RedirectError(Exception):
    redirect_uri: str
    error: str
    description: str
    state: str | None

    def url(self) -> str:
        params = {"error": self.error, "error_description": self.description}
        if self.state:
            params["state"] = self.state
        separator = "&" if "?" in self.redirect_uri else "?"
        return f"{self.redirect_uri}{separator}{urlencode(params)}"


class AuthorizationFlow:
    def __init__(self, store: AuthStore, settings: Settings):
        self.store = store
        self.settings = settings
        self.throttle = LoginThrottle.from_settings(store, settings)

    def start(self, args: dict[str, str]) -> str:
        """Validate an authorization request; returns the pending request id."""
        client = self.store.client(args.get("client_id", ""))
        if client is None:
            raise PageError("unknown client_id")
        redirect_uri = args.get("redirect_uri", "")
        if redirect_uri not in client["redirect_uris"]:
            raise PageError("redirect_uri is not registered for this client (exact match)")
        state = args.get("state")

        def fail(error: str, description: str) -> RedirectError:
            return RedirectError(redirect_uri, error, description, state)

        if args.get("response_type") != "code":
            raise fail("unsupported_response_type", "only response_type=code is supported")
        if not state:
            raise fail("invalid_request", "state is required")
        if args.get("code_challenge_method") != "S256":
            raise fail("invalid_request", "PKCE with code_challenge_method=S256 is required")
        if not CHALLENGE.match(args.get("code_challenge", "")):
            raise fail("invalid_request", "code_challenge must be 43-128 base64url characters")
        if args.get("aud", "").rstrip("/") != self.settings.fhir_base:
            raise fail("invalid_request", f"aud must be this server: {self.settings.fhir_base}")
        try:
            scopes = Scopes.parse(args.get("scope")).granted_by(Scopes.parse(client["scope"]))
        except ScopeError as exc:
            raise fail("invalid_scope", str(exc)) from None
        if not scopes.rules and "openid" not in scopes:
            raise fail("invalid_scope", "none of the requested scopes is allowed for this client")
        launch: Record = {}
        if args.get("launch"):
            found = self.store.get_live(LAUNCHES, args["launch"])
            if found is None or "launch" not in scopes:
                raise fail("invalid_request", "unknown or expired launch (and scope needs launch)")
            launch = {"patient": found.get("patient"), "encounter": found.get("encounter")}
        request_id = secrets.token_urlsafe(24)
        self.store.put(
            REQUESTS,
            {
                "_id": request_id,
                "client_id": client["_id"],
                "client_name": client["name"],
                "redirect_uri": redirect_uri,
                "state": state,
                "challenge": args["code_challenge"],
                "nonce": args.get("nonce"),
                "scope": str(scopes),
                "ehr_launch": bool(launch),
                "patient": launch.get("patient"),
                "encounter": launch.get("encounter"),
                "user": None,
                "session": None,
                "expires": now() + timedelta(minutes=PENDING_MINUTES),
            },
        )
        return request_id

    def pending(self, request_id: str, session: str | None = None) -> Record:
        """The pending request; with `session`, only for the browser that logged in."""
        record = self.store.get_live(REQUESTS, request_id)
        if record is None:
            raise PageError("this sign-in request is unknown or has expired; start again")
        if session is not None and (
            record.get("session") is None or record["session"] != hashed(session)
        ):
            raise PageError("this sign-in belongs to another browser session; start again")
        return record

    def login(self, request_id: str, username: str, password: str, address: str) -> str | None:
        """The new session value on success, None for wrong credentials; LoginThrottled
        while the username or the client address has too many recent failures."""
        self.pending(request_id)
        self.throttle.check(username, address)
        user = self.store.user(username)
        if not verify_password(password, user["password"] if user else dummy_hash()):
            self.throttle.failed(username, address)
            return None
        assert user is not None
        self.throttle.succeeded(username)
        session = secrets.token_urlsafe(32)
        changes: Record = {"user": user["_id"], "session": hashed(session)}
        self.store.update(REQUESTS, request_id, changes)
        return session

    def needs_patient(self, record: Record) -> bool:
        scopes = Scopes.parse(record["scope"])
        wants = "launch/patient" in scopes or "patient" in scopes.contexts()
        return wants and not record.get("patient")

    def set_patient(self, request_id: str, patient_id: str) -> None:
        self.store.update(REQUESTS, request_id, {"patient": patient_id})

    def decide(self, record: Record, approve: bool, removed_types: set[str]) -> str:
        """Finish: the redirect URL carrying a code (or access_denied)."""
        if not approve:
            raise RedirectError(
                record["redirect_uri"], "access_denied", "the user declined", record["state"]
            )
        user = self.store.user(record["user"]) or {}
        scopes = Scopes.parse(record["scope"]).without_types(removed_types)
        code = secrets.token_urlsafe(32)
        self.store.put(
            CODES,
            {
                "_id": hashed(code),
                "used": False,
                "grant": new_grant_id(),
                "client_id": record["client_id"],
                "redirect_uri": record["redirect_uri"],
                "challenge": record["challenge"],
                "nonce": record.get("nonce"),
                "scope": str(scopes),
                "patient": record.get("patient"),
                "encounter": record.get("encounter"),
                "user": user.get("_id"),
                "fhir_user": user.get("fhir_user"),
                "admin": bool(user.get("admin")),
                "need_patient_banner": not record["ehr_launch"],
                "expires": now() + timedelta(seconds=self.settings.auth_code_ttl),
            },
        )
        self.store.update(REQUESTS, record["_id"], {"expires": now()})  # one code per request
        params = {"code": code, "state": record["state"]}
        separator = "&" if "?" in record["redirect_uri"] else "?"
        return f"{record['redirect_uri']}{separator}{urlencode(params)}"

    def new_launch(self, patient: str | None, encounter: str | None = None) -> str:
        """An EHR launch context; the EHR passes its id to the app as `launch`."""
        launch_id = secrets.token_urlsafe(16)
        record: dict[str, Any] = {"_id": launch_id, "patient": patient, "encounter": encounter}
        record["expires"] = now() + timedelta(hours=1)
        self.store.put(LAUNCHES, record)
        return launch_id
