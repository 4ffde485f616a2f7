"""One AuditEvent per batch/transaction entry, besides the event for the request itself.

The request's event says who posted which Bundle and how it ended; an admin asking "who
touched Observation/x" searches by entity, so every entry gets its own event too: the
resource it read or wrote (for a create, the id the server assigned), the action
(C/R/U/D, E for searches) and the entry's own outcome. When a transaction fails as a whole
nothing was written and every entry carries the request's outcome. Entries are taken from
the bundle parser's hook (service/bundle_entries.py) and the response Bundle, so the bundle
code itself knows nothing of auditing.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response

from fhirhub.api.audit.search import rest_event
from fhirhub.service.bundle_entries import EntryOp

ACTIONS = {"POST": "C", "PUT": "U", "PATCH": "U", "DELETE": "D", "GET": "R", "HEAD": "R"}
INTERACTIONS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def entry_events(
    record: dict[str, Any] | None,
    request_event: dict[str, Any],
    ops: list[EntryOp],
    response: Response,
) -> tuple[str, list[dict[str, Any]]]:
    """(batch or transaction, the entries' events, each naming the request's event)."""
    bundle = _response_bundle(response)
    answers = bundle.get("entry") if bundle else None
    # A batch never fails as a whole once its entries were parsed; a transaction does.
    kind = str(bundle.get("type", "")).removesuffix("-response") if bundle else "transaction"
    events = []
    for op in ops:
        answer = answers[op.index] if isinstance(answers, list) and op.index < len(answers) else {}
        result = answer.get("response", {}) if isinstance(answer, dict) else {}
        status = _status(result.get("status"), response.status_code)
        action, interaction = _action(op)
        entity = _entity(op, str(result.get("location") or ""))
        target = op.resource_type + (f"/{op.resource_id}" if op.resource_id else "")
        query = f"?{op.query}" if op.query else ""
        description = (
            f"{op.where} of {kind} {request_event['_id']}: {status} {op.method} {target}{query}"
        )
        event = rest_event(record, interaction, action, status, description, entity)
        event["request"] = request_event["_id"]
        events.append(event)
    return kind, events


def _response_bundle(response: Response) -> dict[str, Any] | None:
    """The response Bundle; None when the request failed as a whole (nothing was done)."""
    if response.status_code != 200:
        return None
    try:
        body = orjson.loads(response.get_data())
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


def _status(text: Any, fallback: int) -> int:
    code = str(text or "").split(" ")[0]
    return int(code) if code.isdigit() else fallback


def _action(op: EntryOp) -> tuple[str, str]:
    if op.method in ("GET", "HEAD"):
        if op.resource_id is None:
            return "E", "search-type"
        return "R", "vread" if op.version_id else "read"
    return ACTIONS[op.method], INTERACTIONS[op.method]


def _entity(op: EntryOp, location: str) -> list[str]:
    # "Observation/123/_history/2" for writes: the id is the server's for creates.
    parts = location.split("/")
    if len(parts) >= 2 and parts[0] and parts[1]:
        return [f"{parts[0]}/{parts[1]}"]
    if op.resource_id:
        return [f"{op.resource_type}/{op.resource_id}"]
    return []
