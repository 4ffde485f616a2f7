"""OAuth 2.0 endpoints under /auth: token, introspect, revoke, JWKS, OpenID configuration.

Errors here are OAuth JSON (RFC 6749 5.2), not OperationOutcomes: the blueprint's own
error handler answers before the application's FHIR handler sees them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Blueprint, Response, jsonify, request

from fhirhub.api.requests import hub
from fhirhub.auth.discovery import openid_configuration
from fhirhub.auth.errors import OAuthError, invalid_request

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent.parent / "auth" / "static"
bp = Blueprint("auth", __name__, static_folder=str(STATIC), static_url_path="/static")

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    response = jsonify(body)
    response.status_code = status
    for key, value in {**NO_STORE, **(headers or {})}.items():
        response.headers[key] = value
    return response


@bp.errorhandler(OAuthError)
def _oauth_error(error: OAuthError) -> Response:
    return _json(error.body(), error.status, error.headers)


@bp.errorhandler(Exception)
def _unexpected(error: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return _json({"error": "server_error", "error_description": "see the server log"}, 500)


def _form() -> dict[str, str]:
    if request.mimetype != "application/x-www-form-urlencoded":
        raise invalid_request("send application/x-www-form-urlencoded (RFC 6749)")
    form: dict[str, str] = {}
    for key, values in request.form.lists():
        if len(values) > 1:
            raise invalid_request(f"parameter {key} appears more than once")
        form[key] = values[0]
    return form


@bp.post("/token")
def token() -> Response:
    body = hub().auth.endpoint.token(_form(), request.headers.get("Authorization"))
    return _json(body)


@bp.post("/introspect")
def introspect() -> Response:
    body = hub().auth.endpoint.introspect(_form(), request.headers.get("Authorization"))
    return _json(body)


@bp.post("/revoke")
def revoke() -> Response:
    hub().auth.endpoint.revoke(_form(), request.headers.get("Authorization"))
    return _json({})


@bp.get("/jwks")
def jwks() -> Response:
    response = jsonify(hub().auth.keys.jwks())
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.get("/.well-known/openid-configuration")
def openid() -> Response:
    response = jsonify(openid_configuration(hub().settings))
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response
