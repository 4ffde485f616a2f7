"""AuditEvents: built for each request (DICOM/FHIR audit shape) and searched by admins at
GET /fhir/AuditEvent (date, agent, entity, patient, action, outcome, type, subtype, _count).
The authorization server's own events are built in auth_events, bundle entries' in
audit_bundle."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Request, Response, request

from fhirhub.api.audit.render import code_conditions, render
from fhirhub.api.fhir.render import fhir_response
from fhirhub.api.fhir.requests import current_request, hub
from fhirhub.auth.audit import AuditLog, now
from fhirhub.fhir.dates import parse_period
from fhirhub.fhir.errors import BadRequest, Forbidden
from fhirhub.service import access

bp = Blueprint("auth_audit", __name__)

ACTIONS = {"GET": "R", "HEAD": "R", "POST": "C", "PUT": "U", "PATCH": "U", "DELETE": "D"}
# View names -> restful-interaction codes (others keep the view name, e.g. $status).
INTERACTIONS = {
    "search_type": "search-type",
    "search_post": "search-type",
    "search_compartment": "search-type",
    "conditional_update": "update",
    "conditional_delete": "delete",
    "instance_history": "history-instance",
    "type_history": "history-type",
    "system_history": "history-system",
    "batch_or_transaction": "batch",
    "patient_everything": "operation",
    "all_patients_everything": "operation",
    "encounter_everything": "operation",
    "validate": "operation",
    "search_audit_events": "search-type",
}
MAX_COUNT = 500


def _outcome(status: int) -> str:
    return "0" if status < 400 else ("4" if status < 500 else "8")


def rest_event(
    record: dict[str, Any] | None,
    interaction: str,
    action: str,
    status: int,
    description: str,
    entity: list[str],
    req: Request | None = None,
) -> dict[str, Any]:
    """One audit record for a RESTful interaction (a request, or one bundle entry). Stored
    compact: fhirhub/api/audit/render.py builds the AuditEvent resource when searched."""
    moment = now()
    who: list[str] = []
    patient = None
    if record:
        who = [record["fhir_user"]] if record.get("fhir_user") else []
        who += [f"user:{record['user']}"] if record.get("user") else []
        who.append(f"client:{record['client_id']}")
        patient = record.get("patient")
    event = {
        "_id": AuditLog.new_id(moment),
        "ts": moment,
        "k": "rest",
        "sub": interaction,
        "who": who,
        # The launch patient last: whose data this concerns (rendered with role Patient).
        "entity": entity + ([f"Patient/{patient}"] if patient else []),
        "action": action,
        "outcome": _outcome(status),
        "status": status,
        "desc": description[:500],
        "addr": (req or current_request()).remote_addr or "",
    }
    if patient:
        event["patient"] = patient
    return event


def audit_event(
    record: dict[str, Any] | None, status: int, req: Request | None = None
) -> dict[str, Any]:
    req = req or current_request()
    endpoint = (req.endpoint or "").split(".")[-1]
    args = req.view_args or {}
    method = req.method
    action = ACTIONS.get(method, "E")
    if endpoint in ("search_type", "search_post", "search_compartment") or "$" in req.path:
        action = "E"  # searches and operations are "execute" in the AuditEvent action codes
    entity: list[str] = []
    if args.get("resource_type") and args.get("resource_id"):
        entity.append(f"{args['resource_type']}/{args['resource_id']}")
    elif args.get("compartment") and args.get("owner_id"):
        entity.append(f"{args['compartment']}/{args['owner_id']}")
    elif args.get("owner_id"):
        entity.append(f"{req.path.split('/')[2]}/{args['owner_id']}")
    interaction = INTERACTIONS.get(endpoint, endpoint or method.lower())
    description = f"HTTP {status} {method} {req.full_path.rstrip('?')}"
    return rest_event(record, interaction, action, status, description, entity, req)


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
    codes = [code_conditions(n, args[n]) for n in ("type", "subtype") if args.get(n)]
    if codes:
        conditions = {"$and": [conditions, *codes]}
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
            "resource": render(e),
            "search": {"mode": "match"},
        }
        for e in events[:count]
    ]
    return fhir_response(
        {"resourceType": "Bundle", "type": "searchset", "link": links, "entry": entries}
    )
