"""Conditions to Charlson categories through the shipped code table (pure)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

TABLE = Path(__file__).parent.parent / "knowledge" / "charlson.json"


@lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(TABLE.read_text())
    return data


def category(system: str, code: str) -> str | None:
    table = _table()
    normal = code.strip().upper()
    for name, codes in table["conditions"].items():
        if system in table["icd10_systems"]:
            # ICD-10-CM writes I50.9 and I509 alike; prefixes match either way.
            bare = normal.replace(".", "")
            if any(bare.startswith(p.replace(".", "")) for p in codes["icd10"]):
                return str(name)
        elif system == table["snomed_system"] and normal in codes["snomed"]:
            return str(name)
    return None


def categories(conditions: list[dict[str, Any]]) -> set[str]:
    found = set()
    for condition in conditions:
        for coding in (condition.get("code") or {}).get("coding") or []:
            name = category(str(coding.get("system", "")), str(coding.get("code", "")))
            if name:
                found.add(name)
    return found
