"""The one place errors become OperationOutcomes (for every path under /fhir)."""

from __future__ import annotations

import logging

from flask import Flask, Response, current_app, request
from pymongo.errors import ConnectionFailure, OperationFailure
from werkzeug.exceptions import HTTPException

from fhirhub.api.availability import gate_of, unavailable_response
from fhirhub.api.fhir.render import fhir_response
from fhirhub.fhir.errors import FhirError, Issue
from fhirhub.fhir.operation_outcome import outcome, outcome_for_error
from fhirhub.storage.availability import database_unavailable

log = logging.getLogger(__name__)

_HTTP_ISSUE_CODES = {
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    413: "too-costly",
    415: "not-supported",
    429: "throttled",
}


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(FhirError)
    def _fhir_error(error: FhirError) -> Response:
        return fhir_response(outcome_for_error(error), error.status, error.headers)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response | HTTPException:
        status = error.code or 500
        if status == 404 and not request.path.startswith("/fhir"):
            return error
        message = error.description or error.name
        if status == 404:
            message = f"no FHIR endpoint at {request.method} {request.path}"
        issue = Issue(code=_HTTP_ISSUE_CODES.get(status, "processing"), diagnostics=message)
        headers = {}
        valid_methods = getattr(error, "valid_methods", None)
        if status == 405 and valid_methods:
            headers["Allow"] = ", ".join(valid_methods)
        return fhir_response(outcome([issue]), status, headers)

    @app.errorhandler(ConnectionFailure)
    def _database_unreachable(error: ConnectionFailure) -> Response:
        return _database_unavailable(error)

    @app.errorhandler(OperationFailure)
    def _database_error(error: OperationFailure) -> Response:
        # FerretDB up, its PostgreSQL not (killed, restarting): transient too.
        if database_unavailable(error):
            return _database_unavailable(error)
        return _unexpected(error)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        issue = Issue(code="exception", diagnostics="internal server error; see the server log")
        return fhir_response(outcome([issue]), 500)


def _database_unavailable(error: Exception) -> Response:
    # Unreachable, timed out, reconnecting or restarting: the client may retry; nothing was
    # acknowledged (a create may still have committed just before the failure).
    log.warning("database unavailable on %s %s: %s", request.method, request.path, error)
    gate = gate_of(current_app)
    if gate is not None:
        gate.failed(error)
    return unavailable_response()
