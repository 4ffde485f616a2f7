"""Turning FHIR element values into index entries, per search parameter type (pure).

Index entries are plain strings, numbers and datetimes so every search can be answered with
equality, prefix and range comparisons that MongoDB (and FerretDB) evaluate directly.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from fhirhub.fhir.dates import parse_period
from fhirhub.fhir.errors import BadRequest
from fhirhub.fhir.search.tokens import token_keys

MIN_DATE = datetime(1, 1, 1, tzinfo=UTC)
MAX_DATE = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def normalize(text: str) -> str:
    """Case- and accent-insensitive form used by string search."""
    if text.isascii():
        return " ".join(text.lower().split())
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())


# -- token ------------------------------------------------------------------------------


def token_entries(value: Any) -> tuple[list[str], list[str], list[str]]:
    """(keys, lower-cased texts for :text, 'typeSystem|typeCode|value' keys for :of-type)."""
    keys: list[str] = []
    texts: list[str] = []
    types: list[str] = []
    if isinstance(value, bool):
        keys += token_keys(None, "true" if value else "false")
    elif isinstance(value, str | int):
        keys += token_keys(None, str(value))
    elif isinstance(value, dict):
        if "coding" in value or ("text" in value and "value" not in value):
            for coding in value.get("coding") or []:
                k, t, _ = token_entries(coding)
                keys += k
                texts += t
            if isinstance(value.get("text"), str):
                texts.append(normalize(value["text"]))
        elif "code" in value or "display" in value:
            keys += token_keys(value.get("system"), _str(value.get("code")))
            if isinstance(value.get("display"), str):
                texts.append(normalize(value["display"]))
        elif "value" in value:
            code = _str(value.get("value"))
            keys += token_keys(value.get("system"), code)
            kind = value.get("type")
            if isinstance(kind, dict):
                if isinstance(kind.get("text"), str):
                    texts.append(normalize(kind["text"]))
                for coding in kind.get("coding") or []:
                    if code:
                        types.append(f"{coding.get('system', '')}|{coding.get('code', '')}|{code}")
    return keys, texts, types


def _str(value: Any) -> str | None:
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None


# -- string -----------------------------------------------------------------------------

_NAME_PARTS = ("family", "given", "prefix", "suffix", "text")
_ADDRESS_PARTS = ("line", "city", "district", "state", "postalCode", "country", "text")
# The parts of a HumanName or Address that string search reads.
STRING_PARTS = frozenset((*_NAME_PARTS, *_ADDRESS_PARTS))


def string_entries(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        out: list[str] = []
        for part in (*_NAME_PARTS, *_ADDRESS_PARTS):
            item = value.get(part)
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, list):
                out.extend(i for i in item if isinstance(i, str))
        return out
    return []


# -- reference --------------------------------------------------------------------------


def reference_entries(value: Any, base: str) -> tuple[list[str], list[str]]:
    """(reference keys, identifier token keys for :identifier)."""
    refs: list[str] = []
    idents: list[str] = []
    if isinstance(value, str):  # canonical / uri typed references
        refs.append(value.split("|", 1)[0])
    elif isinstance(value, dict):
        ref = value.get("reference")
        if isinstance(ref, str) and not ref.startswith("#"):
            refs += reference_keys(ref, base)
        ident = value.get("identifier")
        if isinstance(ident, dict):
            idents += token_keys(ident.get("system"), _str(ident.get("value")))
    return refs, idents


def reference_keys(ref: str, base: str) -> list[str]:
    """'Patient/1' is stored as itself and as '1' (a search by bare id); local absolute URLs
    are stored as relative ones; history suffixes are dropped."""
    if base and ref.startswith(base + "/"):
        ref = ref[len(base) + 1 :]
    if "/_history/" in ref:
        ref = ref.split("/_history/", 1)[0]
    keys = [ref]
    if "://" not in ref and ref.count("/") == 1:
        keys.append(ref.split("/", 1)[1])
    return keys


# -- date -------------------------------------------------------------------------------


def date_range(value: Any) -> tuple[datetime, datetime] | None:
    try:
        if isinstance(value, str):
            return parse_period(value)
        if isinstance(value, dict):
            if "start" in value or "end" in value:
                low = parse_period(value["start"])[0] if value.get("start") else MIN_DATE
                high = parse_period(value["end"])[1] if value.get("end") else MAX_DATE
                return low, high
            events = value.get("event")
            if isinstance(events, list) and events:
                ranges = [parse_period(e) for e in events if isinstance(e, str)]
                if ranges:
                    return min(r[0] for r in ranges), max(r[1] for r in ranges)
    except BadRequest:
        return None
    return None


# -- number / quantity ------------------------------------------------------------------


def number_value(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dict) and isinstance(value.get("value"), int | float):
        return float(value["value"])
    if isinstance(value, str):
        try:
            return float(Decimal(value))
        except InvalidOperation:
            return None
    return None


def quantity_units(value: Any) -> list[str]:
    if not isinstance(value, dict):
        return []
    keys: list[str] = []
    code = _str(value.get("code"))
    if code:
        keys += token_keys(value.get("system"), code)
    unit = _str(value.get("unit"))
    if unit:
        keys += token_keys(None, unit)
    return sorted(set(keys))
