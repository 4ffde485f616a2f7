"""Strict parsing of FHIR JSON request bodies (pure).

Stricter than json.loads: duplicate keys, keys that MongoDB would read as operators or
paths ('$...', 'a.b'), NaN/Infinity and excessive nesting are all rejected with a 400,
so nothing that arrives in a body can ever become a query operator or field path.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from fhirhub.fhir.errors import BadRequest, Issue

MAX_DEPTH = 64
# orjson reads integers beyond 64 bits as floats, the strict parse as ints: a float this
# large may have been such an integer.
_INT_RANGE = float(2**63)
_ESCAPED_COLONS = ("\\u003a", "\\u003A")


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise BadRequest(f"duplicate JSON property {key!r}", code="structure")
        if key.startswith("$") or "." in key or "\x00" in key:
            raise BadRequest(f"illegal JSON property name {key!r}", code="structure")
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise BadRequest(f"{name} is not valid JSON", code="structure")


def _depth_ok(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, dict | list))
    return True


def _fast_parse(text: str) -> Any | None:
    """orjson's result when the strict parse below would return the same value; None when
    the body needs the strict parse (which then accepts or rejects it, with its messages).

    orjson rejects what the strict parse rejects as malformed (NaN and Infinity included)
    but keeps the last of duplicate keys. Its compact output has one ':' per object member
    plus those inside strings, as does the body (unless it escapes a colon as \\u003a): a
    dropped duplicate leaves the output with fewer."""
    if any(e in text for e in _ESCAPED_COLONS):
        return None
    try:
        value = orjson.loads(text)
        compact = orjson.dumps(value)
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        return None
    if compact.count(b":") != text.count(":") or not _names_ok(value, 1):
        return None
    return value


def _names_ok(node: Any, depth: int) -> bool:
    """No property name the strict parse rejects, no nesting beyond MAX_DEPTH and no number
    that may have been an integer beyond 64 bits."""
    if depth > MAX_DEPTH:
        return False
    if isinstance(node, dict):
        names = "\x01" + "\x01".join(node)  # one scan of all names instead of one each
        if "\x01$" in names or "." in names or "\x00" in names:
            return False
        children: Any = node.values()
    elif isinstance(node, list):
        children = node
    else:
        return True
    for child in children:
        if isinstance(child, dict | list):
            if not _names_ok(child, depth + 1):
                return False
        elif type(child) is float and not -_INT_RANGE < child < _INT_RANGE:
            return False
    return True


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise BadRequest("request body is empty; expected a FHIR JSON resource", code="structure")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(
            f"request body is not valid UTF-8 (byte {exc.start})", code="structure"
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]
    fast = _fast_parse(text)
    if fast is not None:
        return fast
    try:
        value = json.loads(text, object_pairs_hook=_pairs_hook, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
            [Issue("structure", f"malformed JSON: {exc.msg}", expression=())],
            code="structure",
        ) from None
    except RecursionError:
        raise BadRequest(f"JSON nested deeper than {MAX_DEPTH} levels", code="structure") from None
    if not _depth_ok(value, MAX_DEPTH):
        raise BadRequest(f"JSON nested deeper than {MAX_DEPTH} levels", code="structure")
    return value


def parse_resource(body: bytes) -> dict[str, Any]:
    value = parse_json(body)
    if not isinstance(value, dict):
        raise BadRequest("request body must be a JSON object (a FHIR resource)", code="structure")
    if not isinstance(value.get("resourceType"), str):
        raise BadRequest("resource has no resourceType", code="required")
    return value
