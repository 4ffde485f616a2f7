"""Token index keys (pure). One string per way a token can be searched:
'system|code' (exact), '|code' (no system) and '*|code' (any system)."""

from __future__ import annotations

from typing import Any

ANY_SYSTEM = "*"


def token_keys(system: str | None, code: str | None) -> list[str]:
    if not code:
        return []
    keys = [f"{ANY_SYSTEM}|{code}"]
    keys.append(f"{system}|{code}" if system else f"|{code}")
    return keys


def query_key(raw: str) -> str:
    """Search value -> the index key it must equal."""
    if "|" not in raw:
        return f"{ANY_SYSTEM}|{raw}"
    system, code = raw.split("|", 1)
    return f"{system}|{code}"


def identifier_keys(resource: dict[str, Any]) -> list[str]:
    found = resource.get("identifier")
    identifiers = found if isinstance(found, list) else [found] if isinstance(found, dict) else []
    keys: list[str] = []
    for ident in identifiers:
        if isinstance(ident, dict):
            keys.extend(token_keys(ident.get("system"), ident.get("value")))
    return sorted(set(keys))


def extract_index(resource: dict[str, Any]) -> dict[str, list[str]]:
    """Index fields stored next to the current version of a resource."""
    keys = identifier_keys(resource)
    return {"identifier": keys} if keys else {}
