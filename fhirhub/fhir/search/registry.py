"""Search parameters per resource type, from the core package's SearchParameter resources
(plus SearchParameter resources posted to the server)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fhirhub.fhir.definitions import Definitions

TYPES = (
    "number",
    "date",
    "string",
    "token",
    "reference",
    "composite",
    "quantity",
    "uri",
    "special",
)
# Codes become index field names; anything outside this alphabet is not indexed.
SAFE_CODE = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
# Served from dedicated document fields rather than extracted index values.
BUILTIN = {"_id", "_lastUpdated"}
NOT_DOMAIN = ("Bundle", "Parameters", "Binary")
UNSUPPORTED = {"_text", "_content", "_query", "_list", "_has", "_type", "near"}


@dataclass(frozen=True)
class Component:
    definition: str  # canonical URL of the component's SearchParameter
    expression: str


@dataclass(frozen=True)
class SearchParam:
    code: str
    type: str
    url: str
    expressions: tuple[str, ...]  # the parts of the expression that apply to this type
    targets: tuple[str, ...] = ()
    components: tuple[Component, ...] = field(default=())


def split_union(expression: str) -> list[str]:
    """Split a FHIRPath union at top level ('|' outside parentheses and quotes)."""
    parts: list[str] = []
    current: list[str] = []
    depth, quote = 0, False
    for char in expression:
        if char == "'":
            quote = not quote
        elif not quote and char == "(":
            depth += 1
        elif not quote and char == ")":
            depth -= 1
        if char == "|" and depth == 0 and not quote:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def _root(part: str) -> str:
    return part.lstrip("(").split(".", 1)[0].split(" ", 1)[0]


class SearchRegistry:
    def __init__(self, definitions: Definitions):
        self.definitions = definitions
        self._by_type: dict[str, dict[str, SearchParam]] = {}
        self.by_url: dict[str, dict[str, Any]] = {}
        for sp in definitions.search_parameters:
            self.by_url[sp["url"]] = sp
        self._custom: list[dict[str, Any]] = []
        self._core_urls = set(self.by_url)

    def set_custom(self, parameters: list[dict[str, Any]]) -> None:
        """SearchParameter resources stored on the server: they take effect for new writes
        and searches at once; `fhirhub reindex` applies them to existing data."""
        usable = [
            sp
            for sp in parameters
            if isinstance(sp.get("url"), str)
            and sp.get("status") != "retired"
            and isinstance(sp.get("expression"), str)
            and sp.get("code") not in BUILTIN
        ]
        for sp in self._custom:
            if sp["url"] not in self._core_urls:
                self.by_url.pop(sp["url"], None)
        self._custom = usable
        for sp in usable:
            self.by_url[sp["url"]] = sp
        self._by_type.clear()

    def is_core(self, url: str) -> bool:
        """A SearchParameter of the R4 core package (not one posted to the server)."""
        return url in self._core_urls and url not in {sp["url"] for sp in self._custom}

    def params(self, resource_type: str) -> dict[str, SearchParam]:
        found = self._by_type.get(resource_type)
        if found is None:
            found = self._build(resource_type)
            self._by_type[resource_type] = found
        return found

    def get(self, resource_type: str, code: str) -> SearchParam | None:
        return self.params(resource_type).get(code)

    def _build(self, resource_type: str) -> dict[str, SearchParam]:
        out: dict[str, SearchParam] = {}
        for sp in [*self.definitions.search_parameters, *self._custom]:
            bases = sp.get("base", [])
            domain = "DomainResource" in bases and resource_type not in NOT_DOMAIN
            applies = resource_type in bases or "Resource" in bases or domain
            code = sp.get("code", "")
            if not applies or not SAFE_CODE.match(code) or sp.get("type") not in TYPES:
                continue
            parts = [
                p
                for p in split_union(sp.get("expression") or "")
                if _root(p) in (resource_type, "Resource", "DomainResource")
            ]
            out[code] = SearchParam(
                code=code,
                type=sp["type"],
                url=sp.get("url", ""),
                expressions=tuple(parts),
                targets=tuple(sp.get("target", [])),
                components=tuple(
                    Component(c["definition"], c["expression"]) for c in sp.get("component", [])
                ),
            )
        return out
