"""Stored audit records -> R4 AuditEvent resources, built when an admin searches.

Requests store compact records: the searchable fields plus the few facts below, about a
third of the bytes of the full resource. Auditing runs beside every request on the same
machine as the database, and the database's work grows with the size of what is written
(measured on FerretDB: 380 us per full event, 100-130 us per compact one), so the FHIR
JSON is only built for the few events anyone reads. Records written whole (`res`, as the
notification worker's dead letters are) are returned as they are.

Record fields: k ("rest" | "auth"), sub (interaction or authorization event kind), desc,
addr (client address), who/entity/patient/action/outcome (searchable); for "auth" also
user, fhir_user, client, grant, details.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

REST_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
RESTFUL = "http://hl7.org/fhir/restful-interaction"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
IHE = "urn:ihe:event-type-code"
LOCAL = "https://fhirhub.example/fhir/CodeSystem/auth-event"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
PATIENT_ROLE = {"system": OBJECT_ROLE, "code": "1", "display": "Patient"}
AUTH_TYPE = {"system": DCM, "code": "110114", "display": "User Authentication"}
# Standard subtypes where one exists (IHE BALP codes OAuth token requests this way).
STANDARD = {
    "login": (DCM, "110122", "Login"),
    "token": (IHE, "ITI-71", "Get Access Token"),
    "introspect": (IHE, "ITI-102", "Introspect Token"),
}


KINDS = {code: kind for kind, (_, code, _) in STANDARD.items()}


def code_conditions(field: str, value: str) -> dict[str, Any]:
    """A database condition for a `type` or `subtype` search (system|code or code; the code
    decides), answered from the compact fields or, for whole records, the resource."""
    code = value.rsplit("|", 1)[-1]
    if field == "type":
        compact = {"k": "auth"} if code == AUTH_TYPE["code"] else {"k": code}
    else:
        compact = {"sub": KINDS.get(code, code)}
    return {"$or": [compact, {f"res.{field}.code": code}]}


def render(record: dict[str, Any]) -> dict[str, Any]:
    if "res" in record:
        whole: dict[str, Any] = record["res"]
        return whole
    auth = record.get("k") == "auth"
    kind = str(record.get("sub", ""))
    if auth:
        codes = [STANDARD[kind]] if kind in STANDARD else []
        subtype = [{"system": s, "code": c, "display": d} for s, c, d in codes]
        subtype.append({"system": LOCAL, "code": kind, "display": kind})
    else:
        subtype = [{"system": RESTFUL, "code": kind}]
    return {
        "resourceType": "AuditEvent",
        "id": record["_id"],
        "type": dict(AUTH_TYPE) if auth else {"system": REST_TYPE, "code": "rest"},
        "subtype": subtype,
        "action": record.get("action", "E"),
        "recorded": _instant(record["ts"]),
        "outcome": record.get("outcome", "0"),
        "outcomeDesc": record.get("desc", ""),
        "agent": _auth_agents(record) if auth else _rest_agents(record),
        "source": {"observer": {"display": "fhirhub authorization server" if auth else "fhirhub"}},
        "entity": _auth_entities(record) if auth else _rest_entities(record),
    }


def _instant(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _agent(who: dict[str, Any], name: str, requestor: bool, address: str) -> dict[str, Any]:
    agent: dict[str, Any] = {"who": who, "name": name, "requestor": requestor}
    if address:
        agent["network"] = {"address": address, "type": "2"}
    return agent


def _rest_agents(record: dict[str, Any]) -> list[dict[str, Any]]:
    who: list[str] = record.get("who") or []
    if not who:
        return [{"name": "anonymous", "requestor": True}]
    named = {
        w.split(":", 1)[0]: w.split(":", 1)[1] for w in who if w.startswith(("user:", "client:"))
    }
    fhir_user = next((w for w in who if not w.startswith(("user:", "client:"))), None)
    name = named.get("user") or named.get("client", "")
    reference = {"reference": fhir_user} if fhir_user else {"identifier": {"value": name}}
    return [_agent(reference, name, True, record.get("addr", ""))]


def _auth_agents(record: dict[str, Any]) -> list[dict[str, Any]]:
    address = record.get("addr", "")
    user, client = record.get("user"), record.get("client")
    agents: list[dict[str, Any]] = []
    if user:
        fhir_user = record.get("fhir_user")
        who = {"reference": fhir_user} if fhir_user else {"identifier": {"value": user}}
        agents.append(_agent(who, user, True, address))
    if client:
        agents.append(_agent({"identifier": {"value": client}}, client, not user, address))
    return agents or [{"name": "anonymous", "requestor": True}]


def _rest_entities(record: dict[str, Any]) -> list[dict[str, Any]]:
    refs: list[str] = record.get("entity") or []
    patient = record.get("patient")
    entities: list[dict[str, Any]] = []
    for index, ref in enumerate(refs):
        entity: dict[str, Any] = {"what": {"reference": ref}}
        if patient and index == len(refs) - 1:
            entity["role"] = dict(PATIENT_ROLE)  # the launch context: whose data this was
        entities.append(entity)
    return entities


def _auth_entities(record: dict[str, Any]) -> list[dict[str, Any]]:
    entities: list[dict[str, Any]] = []
    grant, details = record.get("grant"), record.get("details") or {}
    if grant or details:
        entity: dict[str, Any] = {"type": {"system": ENTITY_TYPE, "code": "2"}}
        if grant:
            entity["what"] = {"identifier": {"system": "urn:fhirhub:grant", "value": grant}}
        entity["detail"] = [{"type": k, "valueString": v} for k, v in details.items()]
        entities.append(entity)
    if record.get("patient"):
        patient = {"reference": f"Patient/{record['patient']}"}
        entities.append({"what": patient, "role": dict(PATIENT_ROLE)})
    return entities
