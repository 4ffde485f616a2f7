"""Search requests parsed into a query object before any storage sees them (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from urllib.parse import parse_qsl

from fhirhub.fhir.errors import BadRequest, Issue
from fhirhub.fhir.search.registry import BUILTIN, UNSUPPORTED, SearchParam, SearchRegistry
from fhirhub.fhir.strings import forbidden_char

ID_PATTERN = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
MODIFIERS = {
    "token": {"not", "text", "of-type", "missing"},
    "string": {"exact", "contains", "missing"},
    "reference": {"identifier", "missing"},  # plus a resource type
    "uri": {"above", "below", "missing"},
    "date": {"missing"},
    "number": {"missing"},
    "quantity": {"missing"},
    "composite": {"missing"},
}
CONTROLS = {
    "_count",
    "_sort",
    "_include",
    "_revinclude",
    "_summary",
    "_elements",
    "_total",
    "_format",
    "_pretty",
    "_contained",
    "_containedType",
    "_offset",
    "_cursor",
    "_snapshot",
}
DEFAULT_COUNT = 20
MAX_COUNT = 1000


@dataclass(frozen=True)
class Clause:
    """One parameter occurrence: values are ORed, clauses are ANDed."""

    name: str
    type: str
    modifier: str | None
    values: tuple[str, ...]
    param: SearchParam | None = None
    chain: SearchQuery | None = None  # reference must point to a resource matching this
    chain_type: str | None = None
    has: HasClause | None = None


@dataclass(frozen=True)
class HasClause:
    """_has:Type:param:...: resources referenced by a `Type` that matches `query` via `param`."""

    resource_type: str
    param: str
    query: SearchQuery


@dataclass(frozen=True)
class Include:
    source_type: str
    param: str  # '*' for all reference parameters
    target_type: str | None
    iterate: bool
    reverse: bool


@dataclass(frozen=True)
class SearchQuery:
    resource_type: str
    clauses: tuple[Clause, ...] = ()
    sort: tuple[tuple[str, bool], ...] = ()  # (parameter code, descending)
    count: int = DEFAULT_COUNT
    offset: int = 0
    cursor: str | None = None
    includes: tuple[Include, ...] = ()
    summary: str | None = None
    elements: str | None = None
    total: str | None = None
    warnings: tuple[Issue, ...] = field(default=())

    def with_clauses(self, clauses: tuple[Clause, ...]) -> SearchQuery:
        return replace(self, clauses=clauses)


def split_values(raw: str) -> tuple[str, ...]:
    """Split on commas not escaped with a backslash (R4 search escaping)."""
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in raw:
        if escaped:
            current.append(char if char in ",$|\\" else "\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return tuple(parts)


def split_prefix(value: str) -> tuple[str, str]:
    if len(value) > 2 and value[:2] in PREFIXES and (value[2].isdigit() or value[2] == "-"):
        return value[:2], value[2:]
    return "eq", value


class QueryParser:
    def __init__(self, registry: SearchRegistry, resource_types: set[str]):
        self.registry = registry
        self.resource_types = resource_types

    def parse_string(
        self, resource_type: str, query_string: str, strict: bool = False
    ) -> SearchQuery:
        pairs = parse_qsl(query_string.lstrip("?"), keep_blank_values=True)
        return self.parse(resource_type, pairs, strict)

    def parse(
        self, resource_type: str, pairs: list[tuple[str, str]], strict: bool = False
    ) -> SearchQuery:
        clauses: list[Clause] = []
        warnings: list[Issue] = []
        controls: dict[str, list[str]] = {}
        for key, raw in pairs:
            problem = forbidden_char(key + raw)  # PostgreSQL's JSONB cannot even compare NUL
            if problem:
                raise BadRequest(f"search parameter {key[:40]!r} contains {problem}")
            if key in ("_include:iterate", "_revinclude:iterate"):
                key, raw = key.split(":")[0], raw + ":iterate"
            if key in CONTROLS:
                controls.setdefault(key, []).append(raw)
                continue
            try:
                clause = self._clause(resource_type, key, raw)
            except _UnknownParameter as unknown:
                message = f"unknown search parameter {unknown.args[0]!r} for {resource_type}"
                if strict:
                    raise BadRequest(message, code="not-supported") from None
                warnings.append(Issue("not-supported", message + " (ignored)", "warning"))
                continue
            clauses.append(clause)
        return self._with_controls(resource_type, tuple(clauses), controls, tuple(warnings))

    # -- parameters -------------------------------------------------------------------------

    def _clause(self, resource_type: str, key: str, raw: str) -> Clause:
        if key.startswith("_has:"):
            return self._has(resource_type, key, raw)
        head, dot, rest = key.partition(".")
        code, _, modifier = head.partition(":")
        if code in UNSUPPORTED:
            raise BadRequest(f"search parameter {code} is not supported", code="not-supported")
        if code in BUILTIN:
            kind = "token" if code == "_id" else "date"
            if modifier and modifier != "missing":
                raise BadRequest(f"modifier :{modifier} is not supported on {code}")
            return Clause(code, kind, modifier or None, split_values(raw))
        param = self.registry.get(resource_type, code)
        if param is None:
            raise _UnknownParameter(code)
        if dot:
            return self._chain(resource_type, param, modifier, rest, raw)
        if modifier:
            allowed = MODIFIERS.get(param.type, set())
            is_type = param.type == "reference" and modifier in self.resource_types
            if modifier not in allowed and not is_type:
                raise BadRequest(
                    f"modifier :{modifier} is not supported on {param.type} parameter {code}",
                    code="not-supported",
                )
        values = split_values(raw)
        if modifier == "missing" and raw not in ("true", "false"):
            raise BadRequest(f"{key} must be true or false")
        return Clause(code, param.type, modifier or None, values, param)

    def _chain(
        self, resource_type: str, param: SearchParam, modifier: str, rest: str, raw: str
    ) -> Clause:
        if param.type != "reference":
            raise BadRequest(f"{param.code} is not a reference parameter; it cannot be chained")
        targets = [modifier] if modifier else list(param.targets)
        next_code = rest.partition(".")[0].partition(":")[0]
        candidates = [
            t
            for t in targets
            if t in self.resource_types
            and (next_code in BUILTIN or self.registry.get(t, next_code) is not None)
        ]
        if not candidates:
            raise BadRequest(f"cannot chain {param.code}.{rest}: no target type has {next_code!r}")
        if len(candidates) > 1:
            raise BadRequest(
                f"chain {param.code}.{rest} is ambiguous; use {param.code}:<Type>.{rest} "
                f"(one of {', '.join(candidates)})"
            )
        target = candidates[0]
        inner = self._clause(target, rest, raw)
        chain = SearchQuery(target, (inner,))
        return Clause(param.code, "reference", None, (), param, chain=chain, chain_type=target)

    def _has(self, resource_type: str, key: str, raw: str) -> Clause:
        parts = key.split(":", 3)
        if len(parts) < 4 or parts[1] not in self.resource_types:
            raise BadRequest(f"malformed _has parameter {key!r}; expected _has:Type:param:criteria")
        _, other_type, ref_param, rest = parts
        ref = self.registry.get(other_type, ref_param)
        if ref is None or ref.type != "reference":
            raise BadRequest(f"{other_type} has no reference parameter {ref_param!r}")
        inner = self._clause(other_type, rest, raw)
        has = HasClause(other_type, ref_param, SearchQuery(other_type, (inner,)))
        return Clause("_has", "special", None, (), None, has=has)

    # -- result controls ----------------------------------------------------------------------

    def _with_controls(
        self,
        resource_type: str,
        clauses: tuple[Clause, ...],
        controls: dict[str, list[str]],
        warnings: tuple[Issue, ...],
    ) -> SearchQuery:
        def one(name: str) -> str | None:
            values = controls.get(name)
            return values[-1] if values else None

        count = _integer(one("_count"), "_count", DEFAULT_COUNT)
        sort: list[tuple[str, bool]] = []
        for item in ",".join(controls.get("_sort", [])).split(","):
            if not item.strip():
                continue
            descending = item.startswith("-")
            code = item.lstrip("-").strip()
            if code not in BUILTIN and self.registry.get(resource_type, code) is None:
                raise BadRequest(f"cannot sort {resource_type} by unknown parameter {code!r}")
            sort.append((code, descending))
        includes = [
            self._include(resource_type, v, reverse=False) for v in controls.get("_include", [])
        ] + [self._include(resource_type, v, reverse=True) for v in controls.get("_revinclude", [])]
        summary = one("_summary")
        if summary and summary not in ("true", "false", "text", "data", "count"):
            raise BadRequest("_summary must be true, false, text, data or count")
        total = one("_total")
        if total and total not in ("none", "estimate", "accurate"):
            raise BadRequest("_total must be none, estimate or accurate")
        return SearchQuery(
            resource_type=resource_type,
            clauses=clauses,
            sort=tuple(sort),
            count=min(count, MAX_COUNT),
            offset=_integer(one("_offset"), "_offset", 0),
            cursor=one("_cursor"),
            includes=tuple(includes),
            summary=summary,
            elements=one("_elements"),
            total=total,
            warnings=warnings,
        )

    def _include(self, resource_type: str, raw: str, reverse: bool) -> Include:
        name = "_revinclude" if reverse else "_include"
        parts = raw.split(":")
        iterate = False
        if raw.endswith(":iterate") or raw.endswith(":recurse"):
            iterate = True
            parts = parts[:-1]
        if parts == ["*"]:
            return Include(resource_type, "*", None, iterate, reverse)
        if len(parts) not in (2, 3) or parts[0] not in self.resource_types:
            raise BadRequest(f"{name}={raw!r} must be Type:param[:TargetType]")
        source, code = parts[0], parts[1]
        target = parts[2] if len(parts) == 3 else None
        if code != "*":
            param = self.registry.get(source, code)
            if param is None or param.type != "reference":
                raise BadRequest(f"{name}: {source} has no reference parameter {code!r}")
        if not reverse and source != resource_type and not iterate:
            raise BadRequest(f"_include={raw!r} must start with {resource_type} (or use :iterate)")
        return Include(source, code, target, iterate, reverse)


class _UnknownParameter(Exception):
    pass


def _integer(raw: str | None, name: str, default: int) -> int:
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or len(raw) > 9:
        raise BadRequest(f"{name} must be a non-negative integer")
    return int(raw)
