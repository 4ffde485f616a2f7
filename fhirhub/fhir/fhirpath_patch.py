"""FHIRPath Patch (R4 fhirpatch.html): apply a Parameters resource of operations to a resource.

Operations run in order on a copy; paths are located by fhirpath_locate (a FHIRPath subset
mapped back to places in the JSON). Malformed Parameters are a 400, an operation that cannot
apply (no or several matches, a bad index, a changed id) a 422.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

from fhirhub.fhir.errors import BadRequest, Unprocessable
from fhirhub.fhir.fhirpath_locate import Node, evaluate, list_at, one

# JSON keys from the resource root to an element (no indexes) -> may that element repeat?
Repeats = Callable[[Sequence[str]], bool]

# The parts each operation type needs (R4 fhirpatch.html, the table of operations).
REQUIRED = {
    "add": ("path", "name", "value"),
    "insert": ("path", "index", "value"),
    "delete": ("path",),
    "replace": ("path", "value"),
    "move": ("path", "source", "destination"),
}


def _value(part: dict[str, Any]) -> Any:
    """A value[x] as JSON, or an anonymous type built from `part` children (repeats -> list)."""
    for key, value in part.items():
        if key.startswith("value") and key != "value":
            return copy.deepcopy(value)
    parts = part.get("part")
    if not isinstance(parts, list) or not parts:
        raise BadRequest(f"operation part {part.get('name')!r} needs a value[x] or parts")
    built: dict[str, Any] = {}
    for child in parts:
        name = child.get("name") if isinstance(child, dict) else None
        if not isinstance(name, str):
            raise BadRequest("every part of a FHIRPath Patch value needs a name")
        value = _value(child)
        if name in built:
            previous = built[name]
            built[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            built[name] = value
    return built


def _operation(entry: Any) -> dict[str, Any]:
    """The parts of one `operation` parameter by name; `value` is kept as its part."""
    if not isinstance(entry, dict) or entry.get("name") != "operation":
        raise BadRequest("a FHIRPath Patch holds only parameters named 'operation'")
    parts = entry.get("part")
    if not isinstance(parts, list):
        raise BadRequest("a FHIRPath Patch operation needs parts")
    op: dict[str, Any] = {}
    for part in parts:
        name = part.get("name") if isinstance(part, dict) else None
        if name == "value":
            op["value"] = part
        elif name in ("type", "path", "name", "index", "source", "destination"):
            values = [v for k, v in part.items() if k.startswith("value")]
            if len(values) != 1:
                raise BadRequest(f"operation part {name!r} needs exactly one value[x]")
            op[name] = values[0]
        else:
            raise BadRequest(f"unknown FHIRPath Patch operation part {name!r}")
    if op.get("type") not in REQUIRED:
        raise BadRequest(f"operation type must be one of {', '.join(REQUIRED)}")
    for name in REQUIRED[op["type"]]:
        if name not in op:
            raise BadRequest(f"a FHIRPath Patch {op['type']} needs {name!r}")
    for name in ("path", "name"):
        if name in op and not isinstance(op[name], str):
            raise BadRequest(f"operation part {name!r} must be a string")
    for name in ("index", "source", "destination"):
        value = op.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise BadRequest(f"operation part {name!r} must be a non-negative integer")
    return op


def _remove(node: Node) -> None:
    parent, key = node.parent, node.key
    if parent is None:
        raise Unprocessable("delete: the resource itself cannot be deleted by a patch")
    del parent[key]
    if isinstance(parent, dict):
        parent.pop("_" + key, None)  # a primitive's id/extensions go with it


def _delete(resource: dict[str, Any], op: dict[str, Any], repeats: Repeats) -> None:
    # R4: "the element to delete (if found). Only a single element can be deleted."
    nodes = evaluate(resource, op["path"])
    if len(nodes) > 1:
        raise Unprocessable(f"delete: path {op['path']!r} matches {len(nodes)} elements, not one")
    for node in nodes:
        _remove(node)
    _drop_empty_lists(resource)


def _replace(resource: dict[str, Any], op: dict[str, Any], repeats: Repeats) -> None:
    node = one(resource, op["path"], "replace")
    if node.parent is None:
        raise Unprocessable("replace: the resource itself cannot be replaced by a patch")
    node.parent[node.key] = _value(op["value"])


def _add(resource: dict[str, Any], op: dict[str, Any], repeats: Repeats) -> None:
    node = one(resource, op["path"], "add")
    target, name, value = node.value(resource), op["name"], _value(op["value"])
    if not isinstance(target, dict):
        raise Unprocessable(f"add: path {op['path']!r} is a primitive value, not an element")
    if isinstance(target.get(name), list):
        target[name].append(value)
    elif name in target:  # the spec: add only sets a non-repeating element that is absent
        raise Unprocessable(f"add: {name!r} already has a value at {op['path']!r}; use replace")
    else:
        target[name] = [value] if repeats((*node.keys, name)) else value


def _insert(resource: dict[str, Any], op: dict[str, Any], repeats: Repeats) -> None:
    owner, name = list_at(resource, op["path"], "insert")
    items = owner.setdefault(name, [])
    if op["index"] > len(items):
        raise Unprocessable(f"insert: index {op['index']} is past the end of {op['path']!r}")
    items.insert(op["index"], _value(op["value"]))


def _move(resource: dict[str, Any], op: dict[str, Any], repeats: Repeats) -> None:
    owner, name = list_at(resource, op["path"], "move")
    items = owner.get(name, [])
    if max(op["source"], op["destination"]) >= len(items):
        raise Unprocessable(f"move: index out of range for {op['path']!r} ({len(items)} items)")
    items.insert(op["destination"], items.pop(op["source"]))


APPLY = {"add": _add, "insert": _insert, "delete": _delete, "replace": _replace, "move": _move}


def _drop_empty_lists(value: Any) -> None:
    """FHIR JSON has no empty arrays; deleting the last item removes the property."""
    if isinstance(value, dict):
        for key in [k for k, v in value.items() if v == []]:
            del value[key]
        for child in value.values():
            _drop_empty_lists(child)
    elif isinstance(value, list):
        for child in value:
            _drop_empty_lists(child)


def apply_patch(
    resource: dict[str, Any], parameters: Any, repeats: Repeats | None = None
) -> dict[str, Any]:
    """A patched copy of `resource`; 400 for a malformed patch, 422 when it cannot apply."""
    if not isinstance(parameters, dict) or parameters.get("resourceType") != "Parameters":
        raise BadRequest("a FHIRPath Patch body must be a Parameters resource")
    entries = parameters.get("parameter")
    if not isinstance(entries, list) or not entries:
        raise BadRequest("a FHIRPath Patch needs at least one 'operation' parameter")
    operations = [_operation(entry) for entry in entries]
    patched = copy.deepcopy(resource)
    for op in operations:
        APPLY[op["type"]](patched, op, repeats or (lambda keys: False))
    if any(patched.get(key) != resource.get(key) for key in ("resourceType", "id")):
        raise Unprocessable("FHIRPath Patch must not change resourceType or id")
    return patched


def repeats_from(models: Any, resource_type: str) -> Repeats:
    """A Repeats over the validator's ModelRegistry: follows the JSON keys through slots."""

    def repeats(keys: Sequence[str]) -> bool:
        node = models.resource(resource_type)
        slot = None
        for key in keys:
            slot = node.slots.get(key) if node is not None else None
            if slot is None:
                return False
            try:
                node = models.node_of(slot)
            except (KeyError, AttributeError, TypeError):
                node = None  # a primitive: no children to follow
        return bool(slot is not None and slot.is_array)

    return repeats
