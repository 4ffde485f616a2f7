"""Finding and rewriting Reference.reference values inside a resource (pure)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any


def iter_references(node: Any) -> Iterator[str]:
    """Every Reference.reference string in a resource, including contained resources."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                yield value
            elif isinstance(value, dict | list):
                yield from iter_references(value)
    elif isinstance(node, list):
        for item in node:
            yield from iter_references(item)


def rewrite_references(node: Any, replace: Callable[[str], str | None]) -> Any:
    """Copy of node with each Reference.reference passed through replace (None keeps it)."""
    if isinstance(node, dict):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                out[key] = replace(value) or value
            elif isinstance(value, dict | list):
                out[key] = rewrite_references(value, replace)
            else:
                out[key] = value
        return out
    if isinstance(node, list):
        return [rewrite_references(item, replace) for item in node]
    return node


def is_conditional(reference: str) -> bool:
    """'Patient?identifier=...' style references, resolved inside transactions."""
    head = reference.split("?", 1)[0]
    return "?" in reference and "/" not in head and head[:1].isupper()
