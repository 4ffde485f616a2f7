"""GET [base]/Subscription/{id}/$status and [base]/Endpoint/{id}/$status: delivery history."""

from __future__ import annotations

from flask import Blueprint, Response, request

from fhirhub.api.fhir.render import fhir_response
from fhirhub.api.fhir.requests import hub

bp = Blueprint("subscriptions", __name__)


@bp.get("/Subscription/<resource_id>/$status")
def subscription_status(resource_id: str) -> Response:
    args = request.args.to_dict()
    return fhir_response(hub().subscriber_status.status("Subscription", resource_id, args))


@bp.get("/Endpoint/<resource_id>/$status")
def endpoint_status(resource_id: str) -> Response:
    args = request.args.to_dict()
    return fhir_response(hub().subscriber_status.status("Endpoint", resource_id, args))
