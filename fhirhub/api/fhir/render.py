"""Serialising FHIR responses: orjson, honouring the negotiated mime type and _pretty."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Flask, Response

from fhirhub.api.fhir.negotiation import FHIR_JSON
from fhirhub.api.fhir.requests import current_globals, current_request
from fhirhub.subscriptions import secrets

# Headers the Response constructor itself sets: a caller's value must replace them. Any
# other header is new on a fresh response, so appending it is the same as setting it
# (and skips werkzeug's scan of the header list for each one).
_SET_BY_RESPONSE = frozenset({"content-type", "content-length"})
_CONTENT_TYPES = {mime: f"{mime}; charset=utf-8" for mime in (FHIR_JSON, "application/json")}


def install(app: Flask) -> None:
    """Secrets are write-only: every body this app renders has them masked, except those a
    write in the same request generated (fhirhub/subscriptions/secrets.py)."""

    @app.before_request
    def _start() -> None:
        current_globals().reveal_token = secrets.start_revealing()

    @app.teardown_request
    def _stop(_error: BaseException | None) -> None:
        token = current_globals().pop("reveal_token", None)
        if token is not None:
            secrets.stop_revealing(token)


def negotiated_mime() -> str:
    return str(getattr(current_globals(), "fhir_mime", FHIR_JSON))


def fhir_response(
    body: dict[str, Any] | None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    mime = negotiated_mime()
    if body is None:
        response = Response(b"", status=status, mimetype=mime)
    else:
        pretty = current_request().args.get("_pretty", "").lower() == "true"
        options = orjson.OPT_INDENT_2 if pretty else 0
        content_type = _CONTENT_TYPES.get(mime) or f"{mime}; charset=utf-8"
        data = orjson.dumps(secrets.masked(body), option=options)
        response = Response(data, status=status, content_type=content_type)
    if headers:
        out = response.headers
        for key, value in headers.items():
            if key.lower() in _SET_BY_RESPONSE:
                out[key] = value
            else:
                out.add(key, value)
    return response
