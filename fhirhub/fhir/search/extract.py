"""Index extraction at write time: every search parameter's values for one resource (pure).

The same index entries answer database searches and in-memory matching (subscriptions), so
both always agree on what a resource matches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhirhub.fhir.definitions import Definitions
from fhirhub.fhir.search import keys as k
from fhirhub.fhir.search.paths import PathCompiler, Walker, relative_walker
from fhirhub.fhir.search.registry import BUILTIN, SearchParam, SearchRegistry
from fhirhub.fhir.search.values import (
    STRING_PARTS,
    date_range,
    normalize,
    number_value,
    quantity_units,
    reference_entries,
    string_entries,
    token_entries,
)

COMPARTMENT_FIELD = "comp"
# The search keys (keys.py) travel in the index under this entry, by document field; the
# store writes them as their own fields and keeps them out of the stored index.
KEYS = "__keys"
# And the extents of the date ranges keyed (search_stats): {code: date_extent}.
EXTENTS = "__extents"
COMPARTMENT_TYPES = ("Patient", "Encounter", "RelatedPerson", "Practitioner", "Device")


def main_field(param: SearchParam) -> str:
    """Name of the index field a parameter is stored under (before the storage prefix)."""
    return f"{param.code}__lo" if param.type == "date" else param.code


# token_entries of one element, kept for the rest of one extraction: the same element (an
# Observation's code, each component's code) feeds a dozen parameters (code, combo-code and
# every composite). Keyed by id; the value is kept with its entries so the id stays its own.
TokenMemo = dict[int, tuple[Any, tuple[list[str], list[str], list[str]]]]


@dataclass(frozen=True)
class _Planned:
    """One parameter as extraction uses it, resolved once per registry state."""

    param: SearchParam
    walkers: list[Walker]
    # Composite parameters: each component's type and walker; None when a component's
    # SearchParameter is unknown (the parameter then yields nothing, as before).
    components: list[tuple[str, Walker]] | None


@dataclass(frozen=True)
class _Plan:
    source: dict[str, SearchParam]  # the registry's parameters this plan was built from
    params: list[_Planned]
    # String parameters whose values are all among another's (Patient.name.family within
    # Patient.name) are keyed under that one's code: fewer keys, same candidates.
    string_codes: dict[str, str]


Keys = dict[str, list[str]]


class Extractor:
    def __init__(self, definitions: Definitions, registry: SearchRegistry, base: str):
        self.definitions = definitions
        self.registry = registry
        self.base = base
        self.compiler = PathCompiler(definitions)
        self._walkers: dict[tuple[str, str], list[Walker]] = {}
        self._compartments: dict[str, dict[str, list[str]]] = {}
        self._plans: dict[str, _Plan] = {}

    def walkers(self, resource_type: str, param: SearchParam) -> list[Walker]:
        key = (resource_type, param.url or param.code)
        if key not in self._walkers:
            self._walkers[key] = [
                self.compiler.compile(resource_type, e) for e in param.expressions
            ]
        return self._walkers[key]

    def values(self, resource: dict[str, Any], param: SearchParam) -> list[Any]:
        out: list[Any] = []
        for walker in self.walkers(resource["resourceType"], param):
            out.extend(walker(resource))
        return out

    def _plan(self, resource_type: str) -> list[_Planned]:
        """The type's extracted parameters with walkers and components resolved. The
        registry hands out a new dict when its parameters change (custom SearchParameters),
        and a plan is only reused for the very dict it was built from."""
        params = self.registry.params(resource_type)
        plan = self._plans.get(resource_type)
        if plan is None or plan.source is not params:
            planned = [
                _Planned(p, self.walkers(resource_type, p), self._components(p))
                for p in params.values()
                if p.code not in BUILTIN and p.expressions
            ]
            plan = _Plan(params, planned, _string_key_codes(params, self.registry))
            self._plans[resource_type] = plan
        return plan.params

    def string_key_code(self, resource_type: str, code: str) -> str:
        """The code a string parameter's prefix keys are stored under."""
        self._plan(resource_type)
        return self._plans[resource_type].string_codes.get(code, code)

    def _components(self, param: SearchParam) -> list[tuple[str, Walker]] | None:
        if param.type != "composite":
            return None
        resolved: list[tuple[str, Walker]] = []
        for component in param.components:
            sp = self.registry.by_url.get(component.definition)
            if sp is None:
                return None
            resolved.append((sp.get("type", ""), relative_walker(component.expression)))
        return resolved

    def extract(self, resource: dict[str, Any]) -> dict[str, Any]:
        resource_type = resource["resourceType"]
        index: dict[str, Any] = {}
        memo: TokenMemo = {}
        keys: Keys = {k.TOKEN_KEYS: [], k.REFERENCE_KEYS: [], k.STRING_KEYS: [], k.DATE_KEYS: []}
        extents: dict[str, dict[str, int]] = {}
        string_codes = self._plans_string_codes(resource_type)
        for planned in self._plan(resource_type):
            found: list[Any] = []
            for walker in planned.walkers:
                found.extend(walker(resource))
            if found:
                self._add(index, planned, found, memo, keys, string_codes)
        for planned in self._plan(resource_type):
            if planned.param.type == "date" and f"{planned.param.code}__lo" not in index:
                keys[k.DATE_KEYS].append(f"{planned.param.code}<{k.MISSING_BUCKET}")
        for code, value in index.items():
            if code.endswith("__lo"):
                name = code[:-4]
                high = index[f"{name}__hi"]
                keys[k.DATE_KEYS] += k.date_keys(name, value, high)
                extents[name] = k.date_extent(value, high)
        compartments = self.compartments(resource, index)
        if compartments:
            index[COMPARTMENT_FIELD] = compartments
            keys[k.REFERENCE_KEYS] += [f"{k.COMPARTMENT_CODE}={c}" for c in compartments]
        index[KEYS] = {f: list(dict.fromkeys(v)) for f, v in keys.items() if v}
        if extents:
            index[EXTENTS] = extents
        return index

    def _plans_string_codes(self, resource_type: str) -> dict[str, str]:
        self._plan(resource_type)
        return self._plans[resource_type].string_codes

    def _add(
        self,
        index: dict[str, Any],
        planned: _Planned,
        found: list[Any],
        memo: TokenMemo,
        keys: Keys,
        string_codes: dict[str, str],
    ) -> None:
        param = planned.param
        code, kind = param.code, param.type
        if kind == "token":
            tokens, texts, types = [], [], []
            for value in found:
                t_keys, t, ty = _tokens(value, memo)
                tokens += t_keys
                texts += t
                types += ty
            _put(index, code, tokens)
            _put(index, f"{code}__text", texts)
            _put(index, f"{code}__type", types)
            keys[k.TOKEN_KEYS] += [
                k.token_key(code, t[2:]) for t in tokens if t.startswith(ANY_SYSTEM_PREFIX)
            ]
        elif kind == "string":
            strings = [s for value in found for s in string_entries(value)]
            normalized = [normalize(s) for s in strings]
            _put(index, code, normalized)
            _put(index, f"{code}__exact", strings)
            if string_codes.get(code, code) == code:
                keys[k.STRING_KEYS] += k.string_keys(code, normalized)
        elif kind in ("reference",):
            refs, idents = [], []
            for value in found:
                r, i = reference_entries(value, self.base)
                refs += r
                idents += i
            _put(index, code, refs)
            _put(index, f"{code}__identifier", idents)
            keys[k.REFERENCE_KEYS] += [k.token_key(code, k.reference_tail(r)) for r in refs]
        elif kind == "uri":
            uris = [v for v in found if isinstance(v, str)]
            _put(index, code, uris)
            keys[k.TOKEN_KEYS] += [k.token_key(code, v) for v in uris]
        elif kind == "date":
            ranges = [r for r in (date_range(v) for v in found) if r is not None]
            if ranges:
                index[f"{code}__lo"] = min(r[0] for r in ranges)
                index[f"{code}__hi"] = max(r[1] for r in ranges)
        elif kind in ("number", "quantity"):
            numbers = [n for n in (number_value(v) for v in found) if n is not None]
            _put(index, code, numbers)
            if kind == "quantity":
                _put(index, f"{code}__unit", [u for v in found for u in quantity_units(v)])
        elif kind == "composite":
            combos = _composite(planned.components, found, memo)
            _put(index, code, combos)
            keys[k.TOKEN_KEYS] += [k.token_key(code, c) for c in combos]

    def compartments(self, resource: dict[str, Any], index: dict[str, Any]) -> list[str]:
        resource_type = resource["resourceType"]
        memberships: set[str] = set()
        for compartment, params in self._compartment_params(resource_type).items():
            for code in params:
                if code == "{def}":
                    if resource.get("id"):
                        memberships.add(f"{compartment}/{resource['id']}")
                    continue
                for ref in index.get(code, []):
                    if isinstance(ref, str) and ref.startswith(f"{compartment}/"):
                        memberships.add(ref)
        return sorted(memberships)

    def _compartment_params(self, resource_type: str) -> dict[str, list[str]]:
        if resource_type not in self._compartments:
            found: dict[str, list[str]] = {}
            for code in COMPARTMENT_TYPES:
                cd = self.definitions.compartment_definitions.get(code)
                for entry in (cd or {}).get("resource", []):
                    if entry.get("code") == resource_type and entry.get("param"):
                        found[code] = list(entry["param"])
            if resource_type in COMPARTMENT_TYPES:
                found.setdefault(resource_type, []).append("{def}")
            self._compartments[resource_type] = found
        return self._compartments[resource_type]


ANY_SYSTEM_PREFIX = "*|"


def _string_key_codes(params: dict[str, SearchParam], registry: SearchRegistry) -> dict[str, str]:
    """code -> the code its prefix keys are stored under. Only core parameters with one
    expression take part, so the mapping stays the same whatever custom parameters exist."""
    core = {
        p.code: p.expressions[0]
        for p in params.values()
        if p.type == "string" and len(p.expressions) == 1 and registry.is_core(p.url)
    }
    by_expression: dict[str, str] = {}
    for code in sorted(core):
        by_expression.setdefault(core[code], code)
    mapping: dict[str, str] = {}
    for code, expression in core.items():
        owner = by_expression[expression]
        parent, _, part = expression.rpartition(".")
        if parent in by_expression and part in STRING_PARTS:
            owner = by_expression[parent]
        if owner != code:
            mapping[code] = owner
    for code in list(mapping):  # family -> name, and name's owner if name has one
        seen = {code}
        while mapping[code] in mapping and mapping[code] not in seen:
            seen.add(mapping[code])
            mapping[code] = mapping[mapping[code]]
    return mapping


def _composite(
    components: list[tuple[str, Walker]] | None, roots: list[Any], memo: TokenMemo
) -> list[str]:
    """Combined keys 'first$second' for each root element (equality semantics)."""
    if components is None:
        return []
    combos: list[str] = []
    for root in roots:
        if not isinstance(root, dict):
            continue
        parts = [_component_keys(kind, walker(root), memo) for kind, walker in components]
        keys = [""]
        for options in parts:
            keys = [f"{k}${o}" if k else o for k in keys for o in options]
        combos += keys
    return sorted(set(combos))


def _component_keys(kind: str, values: list[Any], memo: TokenMemo) -> list[str]:
    keys: list[str] = []
    for value in values:
        if kind == "token":
            keys += _tokens(value, memo)[0]
        elif kind == "string":
            keys += [normalize(s) for s in string_entries(value)]
        elif kind in ("quantity", "number"):
            number = number_value(value)
            if number is not None:
                keys.append(_number_key(number))
    return keys


def _tokens(value: Any, memo: TokenMemo) -> tuple[list[str], list[str], list[str]]:
    """token_entries, computed once per element within one extraction (callers only read
    the lists)."""
    seen = memo.get(id(value))
    if seen is not None and seen[0] is value:
        return seen[1]
    entries = token_entries(value)
    memo[id(value)] = (value, entries)
    return entries


def _number_key(number: float) -> str:
    return f"{number:.12g}"


def _put(index: dict[str, Any], field: str, values: list[Any]) -> None:
    if values:
        unique = list(dict.fromkeys(values))
        index[field] = unique
