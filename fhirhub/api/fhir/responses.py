"""Building FHIR HTTP responses for stored resources (headers per R4 http.html)."""

from __future__ import annotations

from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

from flask import Request, Response

from fhirhub.api.fhir.render import fhir_response
from fhirhub.api.fhir.requests import current_request, hub
from fhirhub.fhir.errors import Issue
from fhirhub.fhir.operation_outcome import outcome
from fhirhub.service.resources import WriteResult
from fhirhub.storage.documents import StoredVersion


def version_headers(stored: StoredVersion) -> dict[str, str]:
    return {
        "ETag": stored.etag,
        "Last-Modified": format_datetime(stored.last_updated, usegmt=True),
    }


def location(base: str, stored: StoredVersion) -> str:
    return f"{base}/{stored.resource_type}/{stored.resource_id}/_history/{stored.version}"


def not_modified(stored: StoredVersion, req: Request) -> bool:
    headers = req.headers
    if_none_match = headers.get("If-None-Match")
    if if_none_match:
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        return f'"{stored.version}"' in tags or "*" in tags
    since = headers.get("If-Modified-Since")
    if since:
        try:
            moment = parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False
        return stored.last_updated.replace(microsecond=0) <= moment
    return False


def projected(body: dict[str, Any], req: Request) -> dict[str, Any]:
    args = req.args
    return hub().projector.project(body, args.get("_summary"), args.get("_elements"))


def read_response(stored: StoredVersion) -> Response:
    req = current_request()
    headers = version_headers(stored)
    if not_modified(stored, req):
        return fhir_response(None, 304, headers)
    assert stored.resource is not None
    response = fhir_response(projected(stored.resource, req), 200, headers)
    if req.method == "HEAD":
        response.set_data(b"")
    return response


def prefer_return(req: Request) -> str:
    for part in req.headers.get("Prefer", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key.strip() == "return":
            return value.strip().strip('"')
    return "representation"


def write_response(base: str, result: WriteResult, status: int) -> Response:
    stored = result.stored
    headers = version_headers(stored)
    req = current_request()
    if status == 201 or result.existing or req.method in ("PUT", "PATCH"):
        headers["Location" if status == 201 else "Content-Location"] = location(base, stored)
    mode = prefer_return(req)
    if mode == "minimal":
        return fhir_response(None, status, headers)
    if mode == "OperationOutcome":
        issues = result.warnings or [
            Issue(
                "informational",
                f"{stored.resource_type}/{stored.resource_id} version {stored.version} stored",
                severity="information",
            )
        ]
        return fhir_response(outcome(issues), status, headers)
    assert stored.resource is not None
    return fhir_response(stored.resource, status, headers)
