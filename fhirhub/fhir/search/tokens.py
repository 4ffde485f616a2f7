"""Token index keys (pure). One string per way a token can be searched:
'system|code' (exact), '|code' (no system) and '*|code' (any system)."""

from __future__ import annotations

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
