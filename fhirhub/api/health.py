"""GET /healthz: 200 when the database answers, 503 otherwise (plain JSON, not FHIR)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from fhirhub.hub import Hub

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    hub: Hub = current_app.extensions["fhirhub"]
    problem = hub.database_problem()
    if problem:
        return jsonify(status="unavailable", database=problem), 503
    return jsonify(status="ok", database="ok"), 200
