"""Search requests parsed into a query object before any storage sees them (pure).

This is the minimal core used by conditional create/update/delete and conditional
references; the full search engine extends the same objects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from fhirhub.fhir.errors import BadRequest

# Parameters whose values are extracted into index fields at write time.
INDEXED_TOKEN_PARAMS = frozenset({"identifier"})
ID_PATTERN = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


@dataclass(frozen=True)
class Clause:
    """One parameter occurrence: values are ORed; clauses are ANDed."""

    name: str
    modifier: str | None
    values: tuple[str, ...]


@dataclass(frozen=True)
class SearchQuery:
    resource_type: str
    clauses: tuple[Clause, ...] = ()
    unsupported: tuple[str, ...] = field(default=())


def split_values(raw: str) -> tuple[str, ...]:
    """Split on commas not escaped with a backslash (FHIR search escaping)."""
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in raw:
        if escaped:
            current.append(char)
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


def parse_query_string(resource_type: str, query_string: str) -> SearchQuery:
    pairs = parse_qsl(query_string, keep_blank_values=True)
    return parse_pairs(resource_type, pairs)


def parse_pairs(resource_type: str, pairs: list[tuple[str, str]]) -> SearchQuery:
    clauses: list[Clause] = []
    unsupported: list[str] = []
    for key, raw in pairs:
        name, _, modifier = key.partition(":")
        if name.startswith("_") and name not in ("_id",):
            continue  # result controls (_count, _format...) do not select resources
        if name == "_id" or (name in INDEXED_TOKEN_PARAMS and not modifier):
            clauses.append(Clause(name, modifier or None, split_values(raw)))
        else:
            unsupported.append(key)
    return SearchQuery(resource_type, tuple(clauses), tuple(unsupported))


def require_supported(query: SearchQuery, purpose: str) -> SearchQuery:
    """Conditional operations must not silently ignore criteria (that would match too much)."""
    if query.unsupported:
        raise BadRequest(
            f"{purpose}: search parameter(s) {', '.join(query.unsupported)} are not supported "
            f"for {query.resource_type} conditional operations; use identifier or _id"
        )
    if not query.clauses:
        raise BadRequest(f"{purpose}: no search criteria given")
    return query
