"""Writes planned earlier in the same Bundle, for write hooks that compare a resource with
what is on file: in a transaction (or a batch's plain writes, written together) nothing is
committed until the end, so a search cannot see the entries before this one. The Bundle
processor collects each entry once it has passed validation, with the id it will get."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

Planned = list[tuple[str, str, dict[str, Any]]]  # (resource type, id, resource)

_planned: ContextVar[Planned | None] = ContextVar("fhirhub_bundle_planned", default=None)


@contextmanager
def collecting() -> Iterator[None]:
    token = _planned.set([])
    try:
        yield
    finally:
        _planned.reset(token)


def add(resource_type: str, resource_id: str, resource: dict[str, Any]) -> None:
    found = _planned.get()
    if found is not None:
        found.append((resource_type, resource_id, resource))


def planned(resource_type: str) -> list[tuple[str, dict[str, Any]]]:
    """(id, resource) of this type planned so far in the current Bundle (none outside one)."""
    return [(i, r) for t, i, r in _planned.get() or () if t == resource_type]
