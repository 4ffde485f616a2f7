"""GET /fhir/.well-known/smart-configuration (public, CORS-enabled JSON)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from fhirhub.api.fhir.requests import hub
from fhirhub.auth.discovery import smart_configuration

bp = Blueprint("smart", __name__)


@bp.get("/.well-known/smart-configuration")
def smart_configuration_view() -> Response:
    response = jsonify(smart_configuration(hub().settings))
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response
