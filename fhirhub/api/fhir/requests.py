"""Reading request bodies and headers for FHIR interactions."""

from __future__ import annotations

from typing import Any

from flask import Request, current_app, g, request
from flask.ctx import _AppCtxGlobals
from gunicorn.http.errors import ParseException

from fhirhub.api.fhir.negotiation import PATCH_BODY, RESOURCE_BODY, check_request_mime
from fhirhub.fhir.errors import BadRequest, PayloadTooLarge
from fhirhub.fhir.json_body import parse_json, parse_resource
from fhirhub.hub import Hub


def hub() -> Hub:
    found: Hub = current_app.extensions["fhirhub"]
    return found


def current_request() -> Request:
    """The request itself: every attribute read through `flask.request` is a context-variable
    lookup behind a proxy, so code on the hot paths takes the object once."""
    found: Request = request._get_current_object()  # type: ignore[attr-defined]
    return found


def current_globals() -> _AppCtxGlobals:
    """`flask.g` itself, for the same reason."""
    found: _AppCtxGlobals = g._get_current_object()
    return found


def _raw_body(req: Request) -> bytes:
    limit = hub().settings.max_body_bytes
    length = req.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(f"request body exceeds the {limit}-byte limit")
    try:
        data = req.get_data(cache=True)
    except ParseException as exc:
        # A broken chunked body surfaces only while it is read, inside the view: a 400,
        # like the errors gunicorn answers itself (gunicorn_hooks.py), not a 500.
        raise BadRequest(f"the request body could not be read: {exc}", code="structure") from None
    if len(data) > limit:
        raise PayloadTooLarge(f"request body exceeds the {limit}-byte limit")
    return data


def resource_body() -> dict[str, Any]:
    req = current_request()
    check_request_mime(req.headers.get("Content-Type"), RESOURCE_BODY)
    return parse_resource(_raw_body(req))


def patch_body() -> tuple[str, Any]:
    req = current_request()
    media = check_request_mime(req.headers.get("Content-Type"), PATCH_BODY)
    return media, parse_json(_raw_body(req))


def query_string() -> str:
    return request.query_string.decode("utf-8", errors="replace")
