"""OAuth 2.0 endpoints under /auth: token, introspect, revoke, JWKS, OpenID configuration.

Errors here are OAuth JSON (RFC 6749 5.2), not OperationOutcomes: the blueprint's own
error handler answers before the application's FHIR handler sees them. Token, introspection
and revocation requests are audited, granted or refused (auth_events).
"""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Blueprint, Response, jsonify, request

from fhirhub.api.auth import events as auth_events
from fhirhub.api.fhir.requests import hub
from fhirhub.auth.clients import claimed_client_id
from fhirhub.auth.discovery import openid_configuration
from fhirhub.auth.errors import OAuthError, invalid_request

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parents[2] / "auth" / "static"
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
    form: dict[str, str] = {}
    authorization = request.headers.get("Authorization")
    try:
        form = _form()
        answer = hub().auth.endpoint.token(form, authorization)
    except OAuthError as error:
        _refused("token", error, form, authorization, grant_type=form.get("grant_type", ""))
        raise
    details = {"grant_type": form.get("grant_type", ""), "scope": answer.body.get("scope", "")}
    auth_events.from_grant("token", "access token issued", answer.grant, **details)
    return _json(answer.body)


@bp.post("/introspect")
def introspect() -> Response:
    form: dict[str, str] = {}
    authorization = request.headers.get("Authorization")
    try:
        form = _form()
        answer = hub().auth.endpoint.introspect(form, authorization)
    except OAuthError as error:
        _refused("introspect", error, form, authorization)
        raise
    body = answer.body
    about = f"client {body['client_id']}" if body.get("active") else "an inactive token"
    auth_events.from_grant("introspect", f"answered for {about}", answer.grant)
    return _json(body)


@bp.post("/revoke")
def revoke() -> Response:
    form: dict[str, str] = {}
    authorization = request.headers.get("Authorization")
    try:
        form = _form()
        revoked = hub().auth.endpoint.revoke(form, authorization)
    except OAuthError as error:
        _refused("revoke", error, form, authorization)
        raise
    if revoked is None:
        client = claimed_client_id(form, authorization)
        auth_events.record(
            "revoke", "ok", "unknown or foreign token: nothing revoked", client_id=client
        )
    else:
        what = "grant" if revoked["kind"] == "refresh" else "access token"
        auth_events.from_grant("revoke", f"{what} revoked", revoked)
    return _json({})


def _refused(
    kind: str,
    error: OAuthError,
    form: dict[str, str],
    authorization: str | None,
    **details: str,
) -> None:
    auth_events.record(
        kind,
        "alarm" if error.alarm else "refused",
        f"{error.error}: {error.description}",
        client_id=claimed_client_id(form, authorization),
        user=error.context.get("user"),
        grant=error.context.get("grant"),
        details={k: v for k, v in details.items() if v},
    )


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
