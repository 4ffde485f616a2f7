from __future__ import annotations

import pytest

from fhirhub.api.fhir.negotiation import (
    FHIR_JSON,
    RESOURCE_BODY,
    check_request_mime,
    response_mime,
)
from fhirhub.fhir.errors import NotAcceptable, UnsupportedMediaType


@pytest.mark.parametrize(
    ("fmt", "accept", "expected"),
    [
        (None, None, FHIR_JSON),
        (None, "*/*", FHIR_JSON),
        (None, "application/fhir+json;q=0.9", FHIR_JSON),
        (None, "text/html, application/json", "application/json"),
        ("json", "application/xml", FHIR_JSON),
        ("application/fhir json", None, FHIR_JSON),  # '+' decoded as space in a query string
    ],
)
def test_response_mime(fmt: str | None, accept: str | None, expected: str) -> None:
    assert response_mime(fmt, accept) == expected


@pytest.mark.parametrize(("fmt", "accept"), [("xml", None), ("turtle", None), (None, "text/html")])
def test_unproducible_is_406(fmt: str | None, accept: str | None) -> None:
    with pytest.raises(NotAcceptable):
        response_mime(fmt, accept)


def test_request_mime() -> None:
    assert check_request_mime("application/fhir+json; charset=utf-8", RESOURCE_BODY) == FHIR_JSON
    with pytest.raises(UnsupportedMediaType):
        check_request_mime("text/plain", RESOURCE_BODY)
    with pytest.raises(UnsupportedMediaType):
        check_request_mime(None, RESOURCE_BODY)
