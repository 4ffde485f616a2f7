"""Required-binding checks against ValueSets expanded from the core package (pure).

Only what can be expanded locally and completely is enforced: explicit concept lists,
whole CodeSystems shipped with content 'complete' (nested concepts included), included
ValueSets and is-a/descendent-of filters. Anything else (SNOMED, UCUM, BCP-47, ...) makes
the ValueSet unexpandable and the check is skipped rather than rejecting good data.
"""

from __future__ import annotations

import threading
from typing import Any

from fhirhub.fhir.definitions import Definitions

Json = dict[str, Any]
Expansion = dict[str, frozenset[str]]  # system -> codes


class _Unexpandable(Exception):
    pass


def _walk_concepts(concepts: list[Json], out: set[str]) -> None:
    for concept in concepts:
        out.add(concept["code"])
        if "concept" in concept:
            _walk_concepts(concept["concept"], out)


def _descendants(concepts: list[Json], root: str, inside: bool, out: set[str]) -> None:
    for concept in concepts:
        here = inside or concept["code"] == root
        if here:
            out.add(concept["code"])
        if "concept" in concept:
            _descendants(concept["concept"], root, here, out)


class Terminology:
    def __init__(self, definitions: Definitions) -> None:
        self._defs = definitions
        self._cache: dict[str, Expansion | None] = {}
        self._flat: dict[str, frozenset[str] | None] = {}
        self._lock = threading.Lock()

    def expand(self, url: str) -> Expansion | None:
        """Codes by system, or None when the ValueSet cannot be expanded locally."""
        if url in self._cache:
            return self._cache[url]
        with self._lock:  # a half-built cache entry must not be read by another thread
            if url not in self._cache:
                try:
                    self._cache[url] = self._expand(url, set())
                except _Unexpandable:
                    self._cache[url] = None
            return self._cache[url]

    def codes(self, url: str) -> frozenset[str] | None:
        """All codes regardless of system (what a bound `code` element may hold)."""
        if url not in self._flat:
            expansion = self.expand(url)
            self._flat[url] = None if expansion is None else frozenset().union(*expansion.values())
        return self._flat[url]

    def _expand(self, url: str, seen: set[str]) -> Expansion:
        if url in seen:
            raise _Unexpandable(url)
        vs = self._defs.value_sets.get(url)
        if vs is None:
            raise _Unexpandable(url)
        compose = vs.get("compose")
        if not compose:
            raise _Unexpandable(url)
        out: dict[str, set[str]] = {}
        for include in compose.get("include", ()):
            for system, codes in self._part(include, seen | {url}).items():
                out.setdefault(system, set()).update(codes)
        for exclude in compose.get("exclude", ()):
            for system, codes in self._part(exclude, seen | {url}).items():
                out.get(system, set()).difference_update(codes)
        return {system: frozenset(codes) for system, codes in out.items()}

    def _part(self, include: Json, seen: set[str]) -> dict[str, set[str]]:
        system = include.get("system")
        result: dict[str, set[str]] | None = None
        if system:
            result = {system: self._system_codes(system, include)}
        for vs_url in include.get("valueSet", ()):
            nested = self._expand(vs_url.partition("|")[0], seen)
            part = {s: set(c) for s, c in nested.items()}
            if result is None:
                result = part
            else:  # system and valueSet together mean the intersection
                result = {s: c & part.get(s, set()) for s, c in result.items()}
        if result is None:
            raise _Unexpandable("include without system or valueSet")
        return result

    def _system_codes(self, system: str, include: Json) -> set[str]:
        if "concept" in include:
            return {c["code"] for c in include["concept"]}
        cs = self._defs.code_systems.get(system)
        if cs is None or cs.get("content") != "complete":
            raise _Unexpandable(system)
        concepts = cs.get("concept", [])
        filters = include.get("filter")
        if not filters:
            out: set[str] = set()
            _walk_concepts(concepts, out)
            return out
        result: set[str] | None = None
        for f in filters:
            if f.get("property") != "concept" or f.get("op") not in ("is-a", "descendent-of"):
                raise _Unexpandable(f"filter {f.get('op')} in {system}")
            found: set[str] = set()
            _descendants(concepts, f["value"], False, found)
            if f["op"] == "descendent-of":
                found.discard(f["value"])
            result = found if result is None else result & found
        return result or set()


def coding_matches(codings: Any, expansion: Expansion) -> bool | None:
    """For a CodeableConcept's codings: True if one is in the set, False if codings from the
    set's systems are present but none matches, None if no coding names one of its systems."""
    relevant = False
    if not isinstance(codings, list):
        return None
    for coding in codings:
        if not isinstance(coding, dict):
            continue
        system = coding.get("system")
        codes = expansion.get(system) if type(system) is str else None
        if codes is None:
            continue
        relevant = True
        code = coding.get("code")
        if type(code) is str and code in codes:
            return True
    return False if relevant else None
