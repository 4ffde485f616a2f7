"""Strict parsing of FHIR JSON request bodies (pure).

Stricter than json.loads: duplicate keys, keys that MongoDB would read as operators or
paths ('$...', 'a.b'), NaN/Infinity and excessive nesting are all rejected with a 400,
so nothing that arrives in a body can ever become a query operator or field path. So are
strings (values and keys) holding what R4 does not allow in a string (fhir/strings.py:
control characters, lone surrogates) and numbers beyond what the store and the encoders
carry exactly: integers outside the signed 64-bit range (orjson reads them back as floats,
and a 5,000-digit one exceeds Python's integer parse limit) and decimals that are not
finite doubles (1e400 reads as infinity). Each of these used to reach the database or an
encoder and fail there with a 500.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

from fhirhub.fhir.errors import BadRequest, Issue
from fhirhub.fhir.strings import forbidden_char

MAX_DEPTH = 64
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# orjson reads integers beyond 64 bits as floats, the strict parse as ints: a float this
# large may have been such an integer.
_INT_RANGE = float(2**63)
_ESCAPED_COLONS = ("\\u003a", "\\u003A")
# A forbidden character can only arrive escaped (JSON allows no raw control character in a
# string, and orjson refuses lone surrogates): bodies without these escapes need no scan.
_CONTROL_ESCAPES = ("\\u00", "\\b", "\\f")
_NUMBER_RULE = (
    "numbers must be integers within the signed 64-bit range or finite decimals "
    "(at most about 1.8e308)"
)


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


def _checked_int(text: str) -> int:
    # 20 characters hold every 64-bit integer: longer ones are out of range, and never
    # converted (Python refuses more than 4,300 digits with a ValueError).
    value = int(text) if len(text) <= 20 else None
    if value is None or not INT64_MIN <= value <= INT64_MAX:
        raise BadRequest(
            f"number {_show_number(text)} is out of range: {_NUMBER_RULE}", code="value"
        )
    return value


def _checked_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadRequest(
            f"number {_show_number(text)} is out of range: {_NUMBER_RULE}", code="value"
        )
    return value


def _show_number(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:12]}...({len(text)} characters)"


def _bad_string(value: Any) -> tuple[str, str] | None:
    """(where, what) of the first key or string holding a forbidden character."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        node, where = stack.pop()
        if isinstance(node, str):
            problem = forbidden_char(node)
            if problem:
                return where or "the body", problem
        elif isinstance(node, dict):
            for key, child in node.items():
                problem = forbidden_char(key)
                if problem:
                    return f"the property name at {where or 'the top level'}", problem
                stack.append((child, f"{where}.{key}" if where else key))
        elif isinstance(node, list):
            stack.extend((child, f"{where}[{i}]") for i, child in enumerate(node))
    return None


def _check_strings(value: Any) -> None:
    found = _bad_string(value)
    if found is not None:
        where, problem = found
        raise BadRequest(
            f"string at {where} contains {problem}",
            [Issue("value", f"string contains {problem}", expression=(where,))],
            code="value",
        )


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
    if any(e in text for e in _CONTROL_ESCAPES) and _bad_string(value) is not None:
        return None
    return value


def _names_ok(node: Any, depth: int) -> bool:
    """No property name the strict parse rejects, no nesting beyond MAX_DEPTH and no number
    that may have been an integer beyond 64 bits (orjson reads those up to 2**64 - 1 as
    ints, beyond as floats)."""
    if depth > MAX_DEPTH:
        return False
    if type(node) is dict:
        names = "\x01" + "\x01".join(node)  # one scan of all names instead of one each
        if "\x01$" in names or "." in names or "\x00" in names:
            return False
        children: Any = node.values()
    elif type(node) is list:
        children = node
    else:
        return True
    for child in children:
        kind = type(child)
        if kind is dict or kind is list:
            if not _names_ok(child, depth + 1):
                return False
        elif kind is float:
            if not -_INT_RANGE < child < _INT_RANGE:
                return False
        elif kind is int and child > INT64_MAX:
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
        value = json.loads(
            text,
            object_pairs_hook=_pairs_hook,
            parse_constant=_reject_constant,
            parse_int=_checked_int,
            parse_float=_checked_float,
        )
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
    _check_strings(value)
    return value


def parse_resource(body: bytes) -> dict[str, Any]:
    value = parse_json(body)
    if not isinstance(value, dict):
        raise BadRequest("request body must be a JSON object (a FHIR resource)", code="structure")
    if not isinstance(value.get("resourceType"), str):
        raise BadRequest("resource has no resourceType", code="required")
    return value
