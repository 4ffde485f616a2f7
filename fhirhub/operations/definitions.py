"""OperationDefinition resources generated from the declarations (pure)."""

from __future__ import annotations

from typing import Any

from fhirhub.operations.model import Operation, Parameter


def operation_definition(operation: Operation, base: str, date: str) -> dict[str, Any]:
    definition: dict[str, Any] = {
        "resourceType": "OperationDefinition",
        "id": operation.id,
        "meta": {"lastUpdated": date},
        "url": f"{base}/OperationDefinition/{operation.id}",
        "name": _name(operation),
        "title": operation.title,
        "status": "active",
        "kind": "operation",
        "date": date,
        "publisher": "fhirhub",
        "description": operation.description,
        "affectsState": operation.affects_state,
        "code": operation.code,
    }
    if operation.based_on:
        definition["base"] = operation.based_on
    if operation.resource:
        definition["resource"] = list(operation.resource)
    definition["system"] = "system" in operation.levels
    definition["type"] = "type" in operation.levels
    definition["instance"] = "instance" in operation.levels
    definition["parameter"] = [_parameter(p) for p in operation.parameters]
    return definition


def _name(operation: Operation) -> str:
    # Computable names start upper-case and hold letters, digits and `_` (inv opd-0).
    words = "".join(ch if ch.isalnum() else " " for ch in operation.title).split()
    return "".join(w[:1].upper() + w[1:] for w in words) or operation.code.capitalize()


def _parameter(parameter: Parameter) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": parameter.name,
        "use": parameter.use,
        "min": parameter.min,
        "max": parameter.max,
    }
    if parameter.documentation:
        out["documentation"] = parameter.documentation
    out["type"] = parameter.type
    if parameter.target_profile:
        out["targetProfile"] = list(parameter.target_profile)
    if parameter.search_type:
        out["searchType"] = parameter.search_type
    return out
