"""GET /fhir/metadata."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from fhirhub.api.fhir.render import fhir_response
from fhirhub.hub import Hub

bp = Blueprint("metadata", __name__)


@bp.get("/metadata")
def metadata() -> Response:
    hub: Hub = current_app.extensions["fhirhub"]
    return fhir_response(hub.capability_statement())
