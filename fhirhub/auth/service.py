"""The authorization server and resource-server checks, composed once per hub."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fhirhub.auth.authorize import AuthorizationFlow
from fhirhub.auth.careteams import care_team_patients
from fhirhub.auth.clients import ClientAuthenticator, new_client
from fhirhub.auth.grants import TokenEndpoint
from fhirhub.auth.keys import KeyRing
from fhirhub.auth.passwords import hash_password
from fhirhub.auth.picker import PatientPicker
from fhirhub.auth.policy import TokenPolicy
from fhirhub.auth.scopes import ScopeError, Scopes
from fhirhub.auth.tokens import GRANT_FIELDS, TokenIssuer, new_grant_id
from fhirhub.config import Settings
from fhirhub.fhir.definitions import Definitions
from fhirhub.fhir.errors import Unauthorized
from fhirhub.fhir.search.extract import Extractor
from fhirhub.service import access
from fhirhub.service.access_grants import GrantRegistry, default_registry
from fhirhub.service.access_shares import ShareRegistry, ShareRule
from fhirhub.service.search import SearchService
from fhirhub.storage.auth_store import AuthStore, Record


class AuthService:
    def __init__(
        self,
        store: AuthStore,
        settings: Settings,
        search: SearchService,
        extractor: Extractor,
        definitions: Definitions,
        grants: GrantRegistry | None = None,
        shares: ShareRegistry | None = None,
    ):
        self.store = store
        self.grants = grants or default_registry()
        self.shares = shares
        self.settings = settings
        self.search = search
        self.extractor = extractor
        self.keys = KeyRing(store)
        self.issuer = TokenIssuer(store, self.keys, settings)
        self.clients = ClientAuthenticator(store, self.url("token"))
        self.endpoint = TokenEndpoint(store, self.clients, self.issuer)
        self.flow = AuthorizationFlow(store, settings)
        self.picker = PatientPicker(search)
        patient_cd = definitions.compartment_definitions.get("Patient") or {}
        self.compartment_types = frozenset(
            {"Patient", "Resource", "DomainResource"}
            | {r["code"] for r in patient_cd.get("resource", []) if r.get("param")}
        )
        self.compartment_params = {
            r["code"]: frozenset(r["param"])
            for r in patient_cd.get("resource", [])
            if r.get("param")
        }
        store.ensure_indexes()
        store.purge_expired()  # once per process: expired codes, tokens, assertion ids

    def url(self, endpoint: str) -> str:
        return f"{self.settings.auth_base}/{endpoint}"

    # -- the resource server side ---------------------------------------------------------

    def authenticate(self, authorization: str | None) -> Record:
        """The live access-token record for a request's Authorization header."""
        if not authorization:
            raise Unauthorized("an access token is required (Authorization: Bearer ...)", None)
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("use the Bearer authorization scheme", "invalid_request")
        record = self.store.token(token.strip())
        if record is None or record["kind"] != "access":
            raise Unauthorized("the access token is invalid, expired or revoked")
        return record

    def policy(self, record: Record) -> TokenPolicy:
        scopes = Scopes.parse(record["scope"])
        confinement: dict[str, list[str] | None] = {
            "system": None,
            "patient": [record["patient"]] if record.get("patient") else [],
        }
        fhir_user = str(record.get("fhir_user") or "")
        if record.get("admin"):
            confinement["user"] = None
        elif fhir_user.startswith("Patient/"):
            confinement["user"] = [fhir_user.split("/", 1)[1]]
        elif "user" in scopes.contexts():
            with access.unrestricted():
                confinement["user"] = care_team_patients(self.search, fhir_user)
        else:
            confinement["user"] = []
        principal = access.Principal(
            client_id=str(record.get("client_id") or ""),
            user=record.get("user"),
            patient=record.get("patient"),
            scope=str(scopes),
            fhir_user=fhir_user or None,
            admin=bool(record.get("admin")),
        )
        return TokenPolicy(
            scopes,
            confinement,
            self.compartment_types,
            self.search,
            self.extractor,
            principal,
            self.grants,
            self.compartment_params,
            self.settings.fhir_base,
            shares=self._shares_of(principal),
            patient_facing=self.shares.patient_facing if self.shares else {},
        )

    def _shares_of(self, principal: access.Principal) -> Callable[[str], list[ShareRule]] | None:
        registry = self.shares
        if registry is None or not registry.entries:
            return None
        return registry.lookup(principal)

    def owner_policy(self, owner: dict[str, str]) -> TokenPolicy:
        """The access of a Subscription's owner as it is now: the user's current fhirUser
        and admin flag and care teams, the scope bounded by what the client is still
        registered for. A user or client that is gone can read nothing."""
        client = self.store.client(owner.get("client", ""))
        user = self.store.user(owner["user"]) if owner.get("user") else None
        scope = ""
        if client is not None and (user is not None or not owner.get("user")):
            try:
                requested = Scopes.parse(owner.get("scope", ""))
            except ScopeError:
                requested = Scopes.parse("")
            scope = str(requested.granted_by(Scopes.parse(client["scope"])))
        record: Record = {
            "client_id": owner.get("client"),
            "scope": scope,
            "patient": owner.get("patient"),
            "user": owner.get("user"),
            "fhir_user": (user or {}).get("fhir_user"),
            "admin": bool((user or {}).get("admin")),
        }
        return self.policy(record)

    # -- administration (CLI, launcher, tests) ----------------------------------------------

    def register_client(self, client_id: str, kind: str, **options: Any) -> str | None:
        """Store a client; returns the secret of a symmetric client (shown once)."""
        record, secret = new_client(client_id, kind, **options)
        self.store.put_client(record)
        return secret

    def add_user(
        self, username: str, password: str, fhir_user: str | None = None, admin: bool = False
    ) -> None:
        record = {"_id": username, "password": hash_password(password)}
        self.store.put_user({**record, "fhir_user": fhir_user, "admin": admin})

    def issue_direct(
        self,
        client_id: str,
        scope: str,
        *,
        user: str | None = None,
        patient: str | None = None,
        ttl: int | None = None,
    ) -> dict[str, Any]:
        """A token without the browser flow, for operators (`fhirhub token issue`): the scope
        is still bounded by what the client is registered for."""
        client = self.store.client(client_id)
        if client is None:
            raise ValueError(f"unknown client {client_id!r}")
        granted = Scopes.parse(scope).granted_by(Scopes.parse(client["scope"]))
        if not granted.items:
            raise ValueError(f"client {client_id!r} is not registered for any of: {scope}")
        user_record = self.store.user(user) if user else None
        if user and user_record is None:
            raise ValueError(f"unknown user {user!r}")
        grant: Record = {k: None for k in GRANT_FIELDS}
        grant.update(grant=new_grant_id(), client_id=client_id, scope=str(granted))
        grant.update(patient=patient)
        if user_record:
            grant.update(
                user=user,
                fhir_user=user_record.get("fhir_user"),
                admin=bool(user_record.get("admin")),
            )
        return self.issuer.issue(grant, ttl=ttl)
