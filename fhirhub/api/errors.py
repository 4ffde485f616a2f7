"""The one place errors become OperationOutcomes (for every path under /fhir)."""

from __future__ import annotations

import logging

from flask import Flask, Response, request
from pymongo.errors import ConnectionFailure
from werkzeug.exceptions import HTTPException

from fhirhub.api.render import fhir_response
from fhirhub.fhir.errors import FhirError, Issue
from fhirhub.fhir.operation_outcome import outcome, outcome_for_error

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
    def _database_unavailable(error: ConnectionFailure) -> Response:
        # Unreachable, timed out or reconnecting: the client may retry; nothing was
        # acknowledged, and a half-done write is rolled forward or compensated by the store.
        log.warning("database unavailable on %s %s: %s", request.method, request.path, error)
        issue = Issue(code="transient", diagnostics="the database is unavailable; retry later")
        return fhir_response(outcome([issue]), 503, {"Retry-After": "5"})

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        issue = Issue(code="exception", diagnostics="internal server error; see the server log")
        return fhir_response(outcome([issue]), 500)
