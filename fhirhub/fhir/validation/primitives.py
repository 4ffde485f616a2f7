"""Checks for the R4 primitive types in their JSON form (pure).

The regexes are the ones the 4.0.1 StructureDefinitions publish for each type's value.
They are compiled with re.ASCII because the spec's validators use Java regex semantics,
where \\s and \\S are ASCII-only (a no-break space is not whitespace there).
Each checker returns None when the value is fine, else a message for the API user.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import date
from typing import Any

from fhirhub.fhir.strings import FORBIDDEN, forbidden_char
from fhirhub.fhir.validation.xhtml import check_xhtml

Checker = Callable[[Any], str | None]

MAX_STRING = 1024 * 1024
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

_YEAR = r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"
_TZ = r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
_DAY = r"(0[1-9]|[1-2][0-9]|3[0-1])"
_MONTH = r"(0[1-9]|1[0-2])"


def _rx(pattern: str) -> Callable[[str], re.Match[str] | None]:
    return re.compile(pattern, re.ASCII).fullmatch


DATE = _rx(rf"{_YEAR}(-{_MONTH}(-{_DAY})?)?")
DATETIME = _rx(rf"{_YEAR}(-{_MONTH}(-{_DAY}(T{_TIME}{_TZ})?)?)?")
INSTANT = _rx(rf"{_YEAR}-{_MONTH}-{_DAY}T{_TIME}{_TZ}")
TIME = _rx(_TIME)
CODE = _rx(r"[^\s]+(\s[^\s]+)*")
ID = _rx(r"[A-Za-z0-9\-\.]{1,64}")
URI = _rx(r"\S*")
OID = _rx(r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+")
UUID = _rx(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_BASE64 = _rx(r"[A-Za-z0-9+/]*={0,2}")
_SPACE = re.compile(r"\s+", re.ASCII)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _not_string(value: Any, type_name: str) -> str | None:
    if type(value) is not str:
        return f"expected a JSON string ({type_name}), got {json_kind(value)} {_show(value)}"
    if not value:
        return "empty string is not allowed; omit the element instead"
    problem = forbidden_char(value)  # R4 datatypes.html#string, for every string type
    if problem:
        return f"string contains {problem}"
    return None


def _string(value: Any) -> str | None:
    if type(value) is str and value and not FORBIDDEN.search(value):
        return None if len(value) <= MAX_STRING else f"longer than {MAX_STRING} characters"
    problem = _not_string(value, "string")
    if problem:
        return problem
    if len(value) > MAX_STRING:
        return f"string is longer than {MAX_STRING} characters"
    return None


def _calendar_ok(text: str) -> bool:
    if len(text) < 10 or text[8:10] <= "28":
        return True
    try:
        date(int(text[:4]), int(text[5:7]), int(text[8:10]))
    except ValueError:
        return False
    return True


def _pattern(type_name: str, match: Callable[[str], Any], dated: bool = False) -> Checker:
    def check(value: Any) -> str | None:
        problem = _not_string(value, type_name)
        if problem:
            return problem
        if not match(value) or (dated and not _calendar_ok(value)):
            return f"{_show(value)} is not a valid {type_name}"
        return None

    return check


def _boolean(value: Any) -> str | None:
    if type(value) is not bool:
        return f"expected a JSON boolean (true/false), got {json_kind(value)} {_show(value)}"
    return None


def _integer(type_name: str, low: int) -> Checker:
    def check(value: Any) -> str | None:
        if type(value) is not int:
            return f"expected a JSON integer ({type_name}), got {json_kind(value)} {_show(value)}"
        if not low <= value <= INT32_MAX:
            return f"{value} is out of range for {type_name} ({low}..{INT32_MAX})"
        return None

    return check


def _decimal(value: Any) -> str | None:
    if type(value) is not float and type(value) is not int:
        return f"expected a JSON number (decimal), got {json_kind(value)} {_show(value)}"
    if type(value) is float and not math.isfinite(value):
        return f"{value} is not a finite decimal"
    return None


def _base64(value: Any) -> str | None:
    problem = _not_string(value, "base64Binary")
    if problem:
        return problem
    compact = _SPACE.sub("", value) if not value.isalnum() else value
    if len(compact) % 4 or not _BASE64(compact):
        return "value is not valid base64"
    return None


def _xhtml(value: Any) -> str | None:
    return _not_string(value, "xhtml") or check_xhtml(value)


CHECKERS: dict[str, Checker] = {
    "boolean": _boolean,
    "integer": _integer("integer", INT32_MIN),
    "unsignedInt": _integer("unsignedInt", 0),
    "positiveInt": _integer("positiveInt", 1),
    "decimal": _decimal,
    "string": _string,
    "markdown": _string,
    "code": _pattern("code", CODE),
    "id": _pattern("id", ID),
    "uri": _pattern("uri", URI),
    "url": _pattern("url", URI),
    "canonical": _pattern("canonical", URI),
    "oid": _pattern("oid", OID),
    "uuid": _pattern("uuid", UUID),
    "date": _pattern("date", DATE, dated=True),
    "dateTime": _pattern("dateTime", DATETIME, dated=True),
    "instant": _pattern("instant", INSTANT, dated=True),
    "time": _pattern("time", TIME),
    "base64Binary": _base64,
    "xhtml": _xhtml,
}


def checker_for(type_code: str) -> Checker:
    return CHECKERS.get(type_code, _string)
