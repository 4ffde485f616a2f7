"""Content negotiation for the FHIR endpoint: JSON only, with R4's mime types and _format."""

from __future__ import annotations

from fhirhub.fhir.errors import NotAcceptable, UnsupportedMediaType

FHIR_JSON = "application/fhir+json"
JSON_PATCH = "application/json-patch+json"
FORM = "application/x-www-form-urlencoded"

_JSON_ALIASES = {
    "json",
    "application/json",
    FHIR_JSON,
    "application/json+fhir",  # DSTU2/STU3 name still sent by older clients
    "text/json",
}
_XML_ALIASES = {
    "xml",
    "application/xml",
    "application/fhir+xml",
    "application/xml+fhir",
    "text/xml",
}
_WILDCARDS = {"*/*", "application/*"}


def _media(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def response_mime(format_param: str | None, accept: str | None) -> str:
    """Pick the response mime type, or raise 406 for anything we cannot produce."""
    if format_param:
        fmt = _media(format_param.replace(" ", "+"))  # '+' arrives decoded as a space
        if fmt in _JSON_ALIASES:
            return "application/json" if fmt == "application/json" else FHIR_JSON
        if fmt in _XML_ALIASES:
            raise NotAcceptable("XML is not supported by this server; use _format=json")
        raise NotAcceptable(f"unsupported _format {format_param!r}; use json")
    if not accept:
        return FHIR_JSON
    offered = [_media(part) for part in accept.split(",") if part.strip()]
    for media in offered:
        if media in (FHIR_JSON, "application/json+fhir"):
            return FHIR_JSON
        if media in ("application/json", "text/json"):
            return "application/json"
        if media in _WILDCARDS:
            return FHIR_JSON
    raise NotAcceptable(
        f"cannot produce any of Accept: {accept}; this server produces application/fhir+json"
    )


def check_request_mime(content_type: str | None, allowed: frozenset[str]) -> str:
    """Validate a request body's Content-Type; returns the bare media type."""
    if not content_type:
        raise UnsupportedMediaType("missing Content-Type; send application/fhir+json")
    media = _media(content_type)
    if media in ("application/json+fhir", "text/json"):
        media = "application/json"
    if media not in allowed:
        raise UnsupportedMediaType(
            f"unsupported Content-Type {content_type!r}; "
            f"expected one of {', '.join(sorted(allowed))}"
        )
    return media


RESOURCE_BODY = frozenset({FHIR_JSON, "application/json"})
PATCH_BODY = frozenset({JSON_PATCH, FHIR_JSON, "application/json"})
SEARCH_BODY = frozenset({FORM})
