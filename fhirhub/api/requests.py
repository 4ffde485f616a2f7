"""Reading request bodies and headers for FHIR interactions."""

from __future__ import annotations

from typing import Any

from flask import current_app, request

from fhirhub.api.negotiation import PATCH_BODY, RESOURCE_BODY, check_request_mime
from fhirhub.fhir.errors import PayloadTooLarge
from fhirhub.fhir.json_body import parse_json, parse_resource
from fhirhub.hub import Hub


def hub() -> Hub:
    found: Hub = current_app.extensions["fhirhub"]
    return found


def _raw_body() -> bytes:
    limit = hub().settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request body exceeds the {limit}-byte limit")
    data = request.get_data(cache=True)
    if len(data) > limit:
        raise PayloadTooLarge(f"request body exceeds the {limit}-byte limit")
    return data


def resource_body() -> dict[str, Any]:
    check_request_mime(request.headers.get("Content-Type"), RESOURCE_BODY)
    return parse_resource(_raw_body())


def patch_body() -> tuple[str, Any]:
    media = check_request_mime(request.headers.get("Content-Type"), PATCH_BODY)
    return media, parse_json(_raw_body())


def query_string() -> str:
    return request.query_string.decode("utf-8", errors="replace")
