"""Locate elements in resource JSON by a FHIRPath subset, for FHIRPath Patch.

Paths are walked here rather than handed to a FHIRPath engine because every result must be
mapped back to the place in the JSON it came from (its parent and key) to be changed. The
subset covers what real patches use: child names, `[n]`, `first()`, `last()`,
`where(<path> = <literal>)` and `extension('<url>')`; anything else is a 422.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fhirhub.fhir.errors import Unprocessable

UNSUPPORTED = "unsupported FHIRPath in patch path"
_LITERAL = r"'(?:[^'\\]|\\.)*'|true|false|-?\d+"
_FIRST = re.compile(r"\s*([A-Za-z_]\w*)")
_STEP = re.compile(
    rf"""\s*(?:
      \[\s*(?P<n>\d+)\s*\]
    | \.\s*(?:
        (?P<func>first|last)\(\s*\)
      | where\(\s*(?P<wpath>[A-Za-z_][\w.]*)\s*=\s*(?P<lit>{_LITERAL})\s*\)
      | extension\(\s*(?P<url>'(?:[^'\\]|\\.)*')\s*\)
      | (?P<name>[A-Za-z_]\w*)
    ))""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Node:
    """One element found by a path: its value sits at parent[key]."""

    parent: Any  # dict or list; None for the resource itself
    key: Any  # str for an object member, int for a list item
    keys: tuple[str, ...]  # JSON keys from the root, for cardinality look-ups

    def value(self, root: dict[str, Any]) -> Any:
        return root if self.parent is None else self.parent[self.key]


def _literal(text: str) -> Any:
    if text.startswith("'"):
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    if text in ("true", "false"):
        return text == "true"
    return int(text)


def parse_path(path: str) -> list[tuple[str, Any]]:
    """Split an expression into (kind, argument) steps; the first names the resource type."""
    first = _FIRST.match(path)
    if not first:
        raise Unprocessable(f"{UNSUPPORTED}: {path!r}", code="not-supported")
    steps: list[tuple[str, Any]] = [("child", first[1])]
    pos, end = first.end(), len(path.rstrip())
    while pos < end:
        match = _STEP.match(path, pos)
        if not match:
            raise Unprocessable(f"{UNSUPPORTED}: {path!r}", code="not-supported")
        if match["n"] is not None:
            steps.append(("index", int(match["n"])))
        elif match["func"]:
            steps.append((match["func"], None))
        elif match["wpath"]:
            steps.append(("where", (match["wpath"].split("."), _literal(match["lit"]))))
        elif match["url"]:
            steps += [("child", "extension"), ("where", (["url"], _literal(match["url"])))]
        else:
            steps.append(("child", match["name"]))
        pos = match.end()
    return steps


def _children(nodes: list[Node], name: str, root: dict[str, Any]) -> list[Node]:
    found: list[Node] = []
    for node in nodes:
        value = node.value(root)
        if not isinstance(value, dict) or name not in value:
            continue
        keys = (*node.keys, name)
        child = value[name]
        if isinstance(child, list):
            found += [Node(child, i, keys) for i in range(len(child))]
        else:
            found.append(Node(value, name, keys))
    return found


def _matches(node: Node, where: tuple[list[str], Any], root: dict[str, Any]) -> bool:
    names, literal = where
    found = [node]
    for name in names:
        found = _children(found, name, root)
    # Same type too: in Python True == 1, in FHIRPath a boolean never equals an integer.
    return any(type(v) is type(literal) and v == literal for v in (n.value(root) for n in found))


def evaluate(resource: dict[str, Any], path: str) -> list[Node]:
    steps = parse_path(path)
    if steps[0] != ("child", resource.get("resourceType")):
        raise Unprocessable(f"patch path must start with {resource.get('resourceType')}: {path!r}")
    nodes = [Node(None, None, ())]
    for kind, arg in steps[1:]:
        if kind == "child":
            nodes = _children(nodes, arg, resource)
        elif kind == "index":
            nodes = nodes[arg : arg + 1]
        elif kind in ("first", "last"):
            nodes = nodes[:1] if kind == "first" else nodes[-1:]
        else:
            nodes = [n for n in nodes if _matches(n, arg, resource)]
    return nodes


def one(resource: dict[str, Any], path: str, kind: str) -> Node:
    nodes = evaluate(resource, path)
    if len(nodes) != 1:
        raise Unprocessable(f"{kind}: path {path!r} matches {len(nodes)} elements, not one")
    return nodes[0]


def list_at(resource: dict[str, Any], path: str, kind: str) -> tuple[dict[str, Any], str]:
    """The object and key holding the list that `path` names (insert and move work on lists)."""
    steps = parse_path(path)
    cut = path.rstrip().rfind(".")
    if steps[-1][0] != "child" or cut < 0:
        raise Unprocessable(f"{kind}: path {path!r} must end with the name of a list element")
    owner = one(resource, path[:cut], kind)
    value = owner.value(resource)
    name = steps[-1][1]
    if not isinstance(value, dict) or not isinstance(value.get(name, []), list):
        raise Unprocessable(f"{kind}: path {path!r} is not a list")
    return value, name
