"""Compiling search parameter expressions into fast path walkers (pure).

Nearly all R4 SearchParameter expressions are simple paths, optionally with a type cast
(`(Observation.value as Quantity)`, `.as(Age)`), a reference type filter
(`.where(resolve() is Patient)`) or an equality filter (`.where(type='email')`). Those are
compiled against the StructureDefinitions (so choice elements like `Observation.effective`
find `effectiveDateTime` / `effectivePeriod`) into walkers about ten times faster than a
general FHIRPath engine; anything else falls back to fhirpathpy.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import fhirpathpy

from fhirhub.fhir.definitions import Definitions

Walker = Callable[[dict[str, Any]], list[Any]]
Step = Callable[[list[Any]], list[Any]]

_CAST_SUFFIX = re.compile(r"^\((.+) as ([A-Za-z]+)\)$|^(.+) as ([A-Za-z]+)$")
_SEGMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(\((?:[^()]|\([^()]*\))*\))?")
_WHERE_RESOLVE = re.compile(r"^\(resolve\(\) is ([A-Za-z]+)\)$")
_MIDDLE_CAST = re.compile(r"^\(([A-Za-z.]+) as ([A-Za-z]+)\)\.")
_EXTENSION = re.compile(r"^\('([^']+)'\)$")
_WHERE_EQ = re.compile(r"^\(([A-Za-z]+)\s*=\s*'([^']*)'\)$")
_AS = re.compile(r"^\(([A-Za-z]+)\)$")
COMPLEX_CONTAINERS = {"BackboneElement", "Element"}


def _cap(name: str) -> str:
    return name[:1].upper() + name[1:]


class _Context:
    """Where a walk is in the type system: an SD's element map and the current path."""

    def __init__(self, elements: dict[str, dict[str, Any]], path: str):
        self.elements = elements
        self.path = path


class PathCompiler:
    def __init__(self, definitions: Definitions):
        self.definitions = definitions
        self._elements: dict[str, dict[str, dict[str, Any]]] = {}

    def _sd_elements(self, type_name: str) -> dict[str, dict[str, Any]]:
        if type_name not in self._elements:
            sd = self.definitions.resource_types.get(type_name) or self.definitions.datatypes.get(
                type_name
            )
            elements = {e["path"]: e for e in sd["snapshot"]["element"]} if sd else {}
            self._elements[type_name] = elements
        return self._elements[type_name]

    def compile(self, resource_type: str, expression: str) -> Walker:
        try:
            return self._compile_fast(resource_type, expression)
        except _Unsupported:
            return _fhirpath_walker(expression)

    def _compile_fast(self, resource_type: str, expression: str) -> Walker:
        expression = _MIDDLE_CAST.sub(r"\1.as(\2).", expression.strip())
        cast = _CAST_SUFFIX.match(expression)
        cast_type = None
        if cast:
            expression = (cast.group(1) or cast.group(3)).strip()
            cast_type = cast.group(2) or cast.group(4)
        segments = _split_segments(expression)
        root = segments[0][0]
        if root not in (resource_type, "Resource", "DomainResource") or segments[0][1]:
            raise _Unsupported
        context: _Context | None = _Context(self._sd_elements(resource_type), resource_type)
        steps: list[Step] = []
        pending: list[str] = []  # field names of the last name step (choice variants)
        for index, (name, args) in enumerate(segments[1:]):
            if args is None:
                names, context = self._resolve(context, name)
                pending = names
                steps.append(_field_step(names))
            elif name == "as" and _AS.match(args):
                target = _AS.match(args).group(1)  # type: ignore[union-attr]
                steps[-1] = _field_step(
                    [n for n in pending if n.endswith(_cap(target))] or [pending[0] + _cap(target)]
                    if pending
                    else []
                )
                context = None
            elif name == "extension" and _EXTENSION.match(args):
                url = _EXTENSION.match(args).group(1)  # type: ignore[union-attr]
                steps.append(_extension_step(url))
                context = None
            elif name == "where" and _WHERE_RESOLVE.match(args):
                steps.append(_reference_type_step(_WHERE_RESOLVE.match(args).group(1)))  # type: ignore[union-attr]
            elif name == "where" and _WHERE_EQ.match(args):
                match = _WHERE_EQ.match(args)
                assert match is not None
                steps.append(_equals_step(match.group(1), match.group(2)))
            else:
                raise _Unsupported
            del index
        if cast_type:
            if not pending:
                raise _Unsupported
            variants = [n for n in pending if n.endswith(_cap(cast_type))]
            steps[-1] = _field_step(variants or [pending[0] + _cap(cast_type)])

        def walk(resource: dict[str, Any]) -> list[Any]:
            nodes: list[Any] = [resource]
            for step in steps:
                nodes = step(nodes)
                if not nodes:
                    return nodes
            return nodes

        return walk

    def _resolve(self, context: _Context | None, name: str) -> tuple[list[str], _Context | None]:
        """JSON names for an element (choice variants expanded) and the context below it."""
        if context is None:
            return [name], None
        path = f"{context.path}.{name}"
        element = context.elements.get(path)
        if element is None and f"{path}[x]" in context.elements:
            element = context.elements[f"{path}[x]"]
            types = [t["code"] for t in element.get("type", [])]
            return [name + _cap(t) for t in types], None
        if element is None:
            return [name], None
        types = [t["code"] for t in element.get("type", [])]
        if element.get("contentReference"):
            ref = element["contentReference"].lstrip("#")
            return [name], _Context(context.elements, ref)
        if len(types) == 1 and types[0] in COMPLEX_CONTAINERS:
            return [name], _Context(context.elements, path)
        if len(types) == 1 and types[0][:1].isupper():
            return [name], _Context(self._sd_elements(types[0]), types[0])
        return [name], None


class _Unsupported(Exception):
    pass


def _split_segments(expression: str) -> list[tuple[str, str | None]]:
    segments: list[tuple[str, str | None]] = []
    position = 0
    while position < len(expression):
        match = _SEGMENT.match(expression, position)
        if not match:
            raise _Unsupported
        segments.append((match.group(1), match.group(2)))
        position = match.end()
        if position < len(expression):
            if expression[position] != ".":
                raise _Unsupported
            position += 1
    if not segments:
        raise _Unsupported
    return segments


def _field_step(names: list[str]) -> Step:
    if len(names) == 1:
        return _one_field_step(names[0])

    def step(nodes: list[Any]) -> list[Any]:
        out: list[Any] = []
        for node in nodes:
            if not isinstance(node, dict):
                continue
            for name in names:
                value = node.get(name)
                if value is None:
                    continue
                if isinstance(value, list):
                    out += [v for v in value if v is not None]
                else:
                    out.append(value)
        return out

    return step


def _one_field_step(name: str) -> Step:
    """The same step for a single JSON name, the usual case: every write runs some fifty
    of these per resource, most finding nothing on the first node."""

    def step(nodes: list[Any]) -> list[Any]:
        out: list[Any] = []
        for node in nodes:
            if isinstance(node, dict):
                value = node.get(name)
                if value is None:
                    continue
                if isinstance(value, list):
                    out += [v for v in value if v is not None]
                else:
                    out.append(value)
        return out

    return step


def _extension_step(url: str) -> Step:
    """`.extension('url')` as search parameters use it: the values of matching extensions."""

    def step(nodes: list[Any]) -> list[Any]:
        out: list[Any] = []
        for node in nodes:
            if not isinstance(node, dict):
                continue
            for extension in node.get("extension") or []:
                if isinstance(extension, dict) and extension.get("url") == url:
                    out.extend(v for k, v in extension.items() if k.startswith("value"))
        return out

    return step


def _reference_type_step(resource_type: str) -> Step:
    marker = f"{resource_type}/"

    def step(nodes: list[Any]) -> list[Any]:
        return [
            n
            for n in nodes
            if isinstance(n, dict)
            and isinstance(n.get("reference"), str)
            and (n["reference"].startswith(marker) or f"/{marker}" in n["reference"])
        ]

    return step


def _equals_step(field: str, value: str) -> Step:
    def step(nodes: list[Any]) -> list[Any]:
        return [n for n in nodes if isinstance(n, dict) and n.get(field) == value]

    return step


@lru_cache(maxsize=1024)
def relative_walker(expression: str) -> Walker:
    """Walker for an expression relative to an element (composite components): plain names
    and `.as(Type)` casts on choice elements; anything else falls back to fhirpathpy."""
    from fhirhub.fhir.search.registry import split_union

    programs: list[list[Step]] = []
    for part in split_union(expression):
        steps: list[Step] = []
        previous = ""
        try:
            for name, args in _split_segments(part):
                if args is None:
                    steps.append(_field_step([name]))
                    previous = name
                elif name == "as" and _AS.match(args) and previous:
                    target = _AS.match(args).group(1)  # type: ignore[union-attr]
                    steps[-1] = _field_step([previous + _cap(target)])
                else:
                    raise _Unsupported
        except _Unsupported:
            return _fhirpath_walker(expression)
        programs.append(steps)

    def walk(node: dict[str, Any]) -> list[Any]:
        out: list[Any] = []
        for steps in programs:
            nodes: list[Any] = [node]
            for step in steps:
                nodes = step(nodes)
            out.extend(nodes)
        return out

    return walk


def _fhirpath_walker(expression: str) -> Walker:
    try:
        compiled = fhirpathpy.compile(expression)
    except Exception:  # the engine's parser raises bare Exceptions
        return lambda resource: []

    def walk(resource: dict[str, Any]) -> list[Any]:
        try:
            result: list[Any] = compiled(resource, {})  # (resource, environment)
        except Exception:  # unsupported functions (resolve(), extension()) yield nothing
            return []
        return result

    return walk
