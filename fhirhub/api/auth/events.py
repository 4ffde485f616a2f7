"""AuditEvents for the authorization server: sign-in, authorization decisions, token
issuance, introspection and revocation, successful or not.

Coded as R4 AuditEvents for authentication are (and as IHE BALP profiles OAuth): type DCM
110114 "User Authentication"; subtype DCM 110122 "Login" for a sign-in, IHE ITI-71 "Get
Access Token" and ITI-102 "Introspect Token" where they apply, plus this server's own code
for each kind, so an admin can search `GET /fhir/AuditEvent?subtype=token`. Outcome 0 is
success, 4 a refusal (wrong password, bad request, user declined), 8 a security alarm (a
replayed authorization code or refresh token: a likely theft, its grant revoked).

Only identifiers are recorded: never passwords, codes, verifiers, tokens, client secrets
or client assertions. Events go through the same batched writer as /fhir requests.
"""

from __future__ import annotations

from typing import Any

from flask import request

from fhirhub.api.fhir.requests import hub
from fhirhub.auth.audit import AuditLog, now

OUTCOMES = {"ok": "0", "refused": "4", "alarm": "8"}


def record(
    kind: str,
    outcome: str,
    description: str,
    *,
    client_id: str | None = None,
    user: str | None = None,
    fhir_user: str | None = None,
    patient: str | None = None,
    grant: str | None = None,
    details: dict[str, str] | None = None,
) -> None:
    """Queue one event. `kind`: login, authorize, token, introspect or revoke; `outcome`:
    ok, refused or alarm; `details`: non-secret facts such as grant_type and scope. Stored
    compact; fhirhub/api/audit/render.py builds the AuditEvent resource when searched."""
    moment = now()
    who = [fhir_user] if user and fhir_user else []
    who += [f"user:{user}"] if user else []
    who += [f"client:{client_id}"] if client_id else []
    entity = [f"grant:{grant}"] if grant else []
    entity += [f"Patient/{patient}"] if patient else []
    event: dict[str, Any] = {
        "_id": AuditLog.new_id(moment),
        "ts": moment,
        "k": "auth",
        "sub": kind,
        "who": who,
        "entity": entity,
        "action": "E",
        "outcome": OUTCOMES[outcome],
        "desc": f"{kind}: {description}"[:500],
        "addr": request.remote_addr or "",
    }
    optional = {
        "patient": patient,
        "user": user,
        "fhir_user": fhir_user,
        "client": client_id,
        "grant": grant,
    }
    event.update((k, v) for k, v in optional.items() if v)
    if details:
        event["details"] = details
    hub().audit.record(event)


def from_grant(kind: str, description: str, grant: dict[str, Any], **details: str) -> None:
    """A successful event about a grant record (token issued, token revoked, ...)."""
    record(
        kind,
        "ok",
        description,
        client_id=grant.get("client_id"),
        user=grant.get("user"),
        fhir_user=grant.get("fhir_user"),
        patient=grant.get("patient"),
        grant=grant.get("grant"),
        details={k: v for k, v in details.items() if v},
    )
