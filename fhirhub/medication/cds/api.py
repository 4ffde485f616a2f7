"""CDS Hooks 2.0 routes: GET /cds-services, POST /cds-services/{id} and its feedback.

With SMART authorization on, a call needs a bearer access token of this server (its access
policy then limits what the service reads); the spec's client-signed JWTs are not
accepted yet. With authorization off (local development) the services are open.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, current_app, request

from fhirhub.fhir.errors import BadRequest, NotFound
from fhirhub.medication.cds import schema
from fhirhub.medication.cds.data import CdsData
from fhirhub.medication.cds.services import SERVICES, discovery, evaluate
from fhirhub.service import access

bp = Blueprint("cds", __name__)


def _hub() -> Any:
    return current_app.extensions["fhirhub"]


def _json(body: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(body),
        status,
        mimetype="application/json",
        headers={"Access-Control-Allow-Origin": "*"},
    )


def _body() -> Any:
    try:
        return json.loads(request.get_data(as_text=True) or "null")
    except ValueError:
        raise BadRequest("the CDS Hooks request body is not JSON") from None


@bp.before_request
def _authenticate() -> None:
    hub = _hub()
    if not hub.settings.auth or request.method == "OPTIONS" or request.endpoint == "cds.services":
        return
    record = hub.auth.authenticate(request.headers.get("Authorization"))
    request.environ["fhirhub.cds_access"] = access.install(hub.auth.policy(record))


@bp.teardown_request
def _uninstall(_error: BaseException | None) -> None:
    token = request.environ.pop("fhirhub.cds_access", None)
    if token is not None:
        access.uninstall(token)


@bp.get("/cds-services")
def services() -> Response:
    return _json(discovery())


@bp.post("/cds-services/<service_id>")
def call(service_id: str) -> Response:
    if service_id not in SERVICES:
        raise NotFound(f"no CDS service {service_id!r}")
    body = _body()
    schema.validate_request(body, SERVICES[service_id]["hook"])
    hub = _hub()
    data = CdsData(body, hub.search.find_versions, hub.settings.fhir_base)
    cards = evaluate(service_id, body, data, hub.medication_knowledge)
    return _json({"cards": cards})


@bp.post("/cds-services/<service_id>/feedback")
def feedback(service_id: str) -> Response:
    if service_id not in SERVICES:
        raise NotFound(f"no CDS service {service_id!r}")
    body = _body()
    schema.validate_feedback(body)
    from fhirhub.auth.audit import AuditLog

    hub = _hub()
    for item in body["feedback"]:
        moment = datetime.now(UTC)
        event_id = AuditLog.new_id(moment)
        reason = (item.get("overrideReason") or {}).get("reason") or {}
        desc = f"{service_id} card {item['card']}: {item['outcome']}"
        if reason:
            desc += f" ({reason.get('code', '')} {reason.get('display', '')})".rstrip()
        comment = (item.get("overrideReason") or {}).get("userComment")
        if comment:
            desc += f": {comment}"
        hub.audit.record(
            {
                "_id": event_id,
                "ts": moment,
                "k": "cds",
                "sub": "cds-feedback",
                "who": [],
                "entity": [item["card"]],
                "res": {
                    "resourceType": "AuditEvent",
                    "id": event_id,
                    "type": {
                        "system": "http://dicom.nema.org/resources/ontology/DCM",
                        "code": "110100",
                        "display": "Application Activity",
                    },
                    "subtype": [
                        {
                            "system": "https://fhirhub.example/fhir/CodeSystem/audit-event-subtype",
                            "code": "cds-feedback",
                            "display": "CDS Hooks card feedback",
                        }
                    ],
                    "action": "E",
                    "recorded": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                    "outcome": "0",
                    "outcomeDesc": desc[:1000],
                    "agent": [{"who": {"display": service_id}, "requestor": False}],
                    "source": {"observer": {"display": "fhirhub CDS services"}},
                },
            }
        )
    return _json({}, 200)
