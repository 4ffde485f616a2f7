"""AuditEvents: built for each request (DICOM/FHIR audit shape) and searched by admins at
GET /fhir/AuditEvent (date, agent, entity, patient, action, outcome, _count)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, request

from fhirhub.api.render import fhir_response
from fhirhub.api.requests import hub
from fhirhub.auth.audit import AuditLog, now
from fhirhub.fhir.dates import parse_period
from fhirhub.fhir.errors import BadRequest, Forbidden
from fhirhub.service import access

bp = Blueprint("auth_audit", __name__)

ACTIONS = {"GET": "R", "HEAD": "R", "POST": "C", "PUT": "U", "PATCH": "U", "DELETE": "D"}
RESTFUL = "http://hl7.org/fhir/restful-interaction"
MAX_COUNT = 500


def _outcome(status: int) -> str:
    return "0" if status < 400 else ("4" if status < 500 else "8")


def audit_event(record: dict[str, Any] | None, status: int) -> dict[str, Any]:
    moment = now()
    endpoint = (request.endpoint or "").split(".")[-1]
    args = request.view_args or {}
    action = ACTIONS.get(request.method, "E")
    if endpoint in ("search_type", "search_post", "search_compartment") or "$" in request.path:
        action = "E"  # searches and operations are "execute" in the AuditEvent action codes
    who: list[str] = []
    agents: list[dict[str, Any]] = []
    if record:
        if record.get("fhir_user"):
            who.append(record["fhir_user"])
        if record.get("user"):
            who.append(f"user:{record['user']}")
        who.append(f"client:{record['client_id']}")
        agents.append(
            {
                "who": {"reference": record["fhir_user"]}
                if record.get("fhir_user")
                else {"identifier": {"value": record.get("user") or record["client_id"]}},
                "name": record.get("user") or record["client_id"],
                "requestor": True,
                "network": {"address": request.remote_addr or "", "type": "2"},
            }
        )
    else:
        agents.append({"name": "anonymous", "requestor": True})
    entity: list[str] = []
    if args.get("resource_type") and args.get("resource_id"):
        entity.append(f"{args['resource_type']}/{args['resource_id']}")
    elif args.get("compartment") and args.get("owner_id"):
        entity.append(f"{args['compartment']}/{args['owner_id']}")
    elif args.get("owner_id"):
        entity.append(f"{request.path.split('/')[2]}/{args['owner_id']}")
    patient = record.get("patient") if record else None
    if patient:
        entity.append(f"Patient/{patient}")  # the launch context: whose data this concerns
    event_id = AuditLog.new_id(moment)
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": event_id,
        "type": {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
        },
        "subtype": [{"system": RESTFUL, "code": endpoint or request.method.lower()}],
        "action": action,
        "recorded": moment.isoformat().replace("+00:00", "Z"),
        "outcome": _outcome(status),
        "outcomeDesc": f"HTTP {status} {request.method} {request.full_path.rstrip('?')}"[:500],
        "agent": agents,
        "source": {"observer": {"display": "fhirhub"}},
        "entity": [{"what": {"reference": ref}} for ref in entity]
        + (
            [{"what": {"reference": f"Patient/{patient}"}, "role": {"code": "1"}}]
            if patient
            else []
        ),
    }
    return {
        "_id": event_id,
        "ts": moment,
        "who": who,
        "entity": entity,
        "patient": patient,
        "action": action,
        "outcome": resource["outcome"],
        "status": status,
        "res": resource,
    }


@bp.get("/AuditEvent")
def search_audit_events() -> Response:
    policy = access.active()
    if policy is not None:
        policy.check_type("AuditEvent", "s")
        if policy.search_filter("AuditEvent", "s") is not None:
            raise Forbidden("the audit log is for administrators and system clients")
    conditions: dict[str, Any] = {}
    args = request.args
    for name, field in (("agent", "who"), ("entity", "entity"), ("action", "action")):
        if args.get(name):
            conditions[field] = args[name]
    if args.get("patient"):
        conditions["entity"] = f"Patient/{args['patient'].removeprefix('Patient/')}"
    if args.get("outcome"):
        conditions["outcome"] = args["outcome"]
    dates: dict[str, Any] = {}
    for value in args.getlist("date"):
        prefix, rest = (
            (value[:2], value[2:]) if value[:2] in ("ge", "le", "gt", "lt") else ("eq", value)
        )
        start, end = parse_period(rest)
        if prefix in ("ge", "gt", "eq"):
            dates["$gte"] = start
        if prefix in ("le", "lt", "eq"):
            dates["$lt"] = end
    if dates:
        conditions["ts"] = dates
    raw_count = args.get("_count", "50")
    if not raw_count.isdigit():
        raise BadRequest("_count must be a non-negative integer")
    count = min(int(raw_count), MAX_COUNT)
    log = hub().audit
    log.flush(timeout=1.0)  # an admin looking for the request just made should see it
    events = log.search(conditions, args.get("_cursor"), count + 1)
    base = hub().settings.fhir_base
    kept = [(k, v) for k, v in args.items(multi=True) if k != "_cursor"]
    links = [
        {"relation": "self", "url": f"{base}/AuditEvent?{urlencode(list(args.items(multi=True)))}"}
    ]
    if len(events) > count and count:
        cursor = [*kept, ("_cursor", events[count - 1]["_id"])]
        links.append({"relation": "next", "url": f"{base}/AuditEvent?{urlencode(cursor)}"})
    entries = [
        {
            "fullUrl": f"{base}/AuditEvent/{e['_id']}",
            "resource": e["res"],
            "search": {"mode": "match"},
        }
        for e in events[:count]
    ]
    return fhir_response(
        {"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries}
    )
