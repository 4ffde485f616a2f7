"""Serialising FHIR responses: orjson, honouring the negotiated mime type and _pretty."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response, g, request

from fhirhub.api.negotiation import FHIR_JSON


def negotiated_mime() -> str:
    return str(getattr(g, "fhir_mime", FHIR_JSON))


def fhir_response(
    body: dict[str, Any] | None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    pretty = request.args.get("_pretty", "").lower() == "true"
    options = orjson.OPT_INDENT_2 if pretty else 0
    data = b"" if body is None else orjson.dumps(body, option=options)
    mime = negotiated_mime()
    response = Response(data, status=status, mimetype=mime)
    if body is not None:
        response.headers["Content-Type"] = f"{mime}; charset=utf-8"
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response
