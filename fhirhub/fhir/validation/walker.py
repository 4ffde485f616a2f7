"""One validation pass over a resource tree; collects every issue (pure).

Hot path: it runs for every element of every ingested resource, so it sticks to dict
lookups and type() checks, and builds expression strings for primitives only on error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fhirhub.fhir.errors import Issue
from fhirhub.fhir.validation.bindings import coding_matches
from fhirhub.fhir.validation.domain import (
    Scope,
    contained_ids,
    contained_resource_issues,
    domain_resource_issues,
    issue,
)
from fhirhub.fhir.validation.fhirpath_ops import Env
from fhirhub.fhir.validation.model import (
    LOCAL_REF_TYPES,
    PRIMITIVE,
    RESOURCE,
    Constraint,
    Slot,
    TypeNode,
)
from fhirhub.fhir.validation.primitives import json_kind

if TYPE_CHECKING:
    from fhirhub.fhir.validation.validator import ResourceValidator


class Walk:
    def __init__(self, validator: ResourceValidator, allow_conditional: bool) -> None:
        self.v = validator
        self.models = validator.models
        self.allow_conditional = allow_conditional
        self.issues: list[Issue] = []

    def error(self, code: str, path: str, message: str, severity: str = "error") -> None:
        self.issues.append(issue(code, path, message, severity))

    # -- resources -------------------------------------------------------------------------

    def resource(self, res: dict[str, Any], path: str | None, container: Scope | None) -> None:
        rt = res.get("resourceType")
        if type(rt) is not str or not rt:
            self.error("required", path or "resourceType", "resourceType is missing")
            return
        node = self.models.resource(rt)
        path = path or rt
        if node is None:
            self.error("value", path, f"unknown resourceType {rt!r}")
            return
        if container is None:
            scope = Scope(Env(res, res), contained_ids(res), False)
        else:
            scope = Scope(Env(res, container.env.root), container.contained_ids, True)
            self.issues.extend(contained_resource_issues(res, path))
        self.walk(res, node, path, scope)
        if container is not None:
            container.absorb(scope, res)
        elif node.is_domain_resource:
            self.issues.extend(domain_resource_issues(res, path, scope))

    # -- elements --------------------------------------------------------------------------

    def walk(self, obj: dict[str, Any], node: TypeNode, path: str, scope: Scope) -> None:
        slots = node.slots
        for key, value in obj.items():
            slot = slots.get(key)
            if slot is None:
                self._other_key(obj, key, value, node, path, scope)
            elif slot.is_array:
                if type(value) is not list:
                    self.error("structure", f"{path}.{key}", "must be a JSON array")
                    self._item(obj, slot, value, path, -1, scope)
                elif not value:
                    self.error("structure", f"{path}.{key}", "arrays must not be empty")
                else:
                    if slot.max is not None and len(value) > slot.max:
                        self.error(
                            "structure",
                            f"{path}.{key}",
                            f"at most {slot.max} allowed, found {len(value)}",
                        )
                    if slot.simple:
                        check = slot.check
                        for i, item in enumerate(value):
                            if item is None or check(item) is not None:
                                self._item(obj, slot, item, path, i, scope)
                    else:
                        for i, item in enumerate(value):
                            self._item(obj, slot, item, path, i, scope)
            elif type(value) is list:
                self.error(
                    "structure", f"{path}.{key}", "must be a single value, not an array (max 1)"
                )
            else:
                if slot.max == 0:
                    self.error("structure", f"{path}.{key}", f"not allowed in {node.path}")
                # simple primitives: only a failing value needs the full (reporting) path
                if not slot.simple or value is None or slot.check(value) is not None:
                    self._item(obj, slot, value, path, -1, scope)
        for element, keys in node.required:
            for k in keys:
                if k in obj:
                    break
            else:
                name = element.name + ("[x]" if element.choice else "")
                self.error("required", f"{path}.{name}", "required element is missing (min 1)")
        for element, keyset in node.choices:
            present = [k for k in obj if k in keyset]  # obj is small; keyset may be 50 types
            if len(present) > 1:
                self.error(
                    "structure",
                    f"{path}.{element.name}[x]",
                    f"only one of {', '.join(present)} is allowed",
                )
        if node.constraints:
            self.constraints(node.constraints, obj, node, node.path, path, scope)

    def _item(
        self, obj: dict[str, Any], slot: Slot, value: Any, path: str, i: int, scope: Scope
    ) -> None:
        if slot.kind == PRIMITIVE:
            if value is None:
                self._null(obj, slot, path, i)
                return
            problem = slot.check(value)
            if problem is not None:
                self.error("value", _at(path, slot.key, i), problem)
                return
            if slot.binding is not None:
                codes = self.v.terminology.codes(slot.binding)
                if codes is not None and value not in codes:
                    self.error(
                        "code-invalid",
                        _at(path, slot.key, i),
                        f"{value!r} is not in the required value set {slot.binding}",
                    )
            if slot.code in LOCAL_REF_TYPES and value[:1] == "#":
                scope.local_refs.add(value)
            constraints = slot.element.constraints
            if constraints:
                where = _at(path, slot.key, i)
                self.constraints(constraints, value, None, slot.base_path, where, scope)
            return
        here = f"{path}.{slot.key}" if i < 0 else f"{path}.{slot.key}[{i}]"
        if type(value) is not dict:
            self.error(
                "value", here, f"expected a JSON object ({slot.code}), got {json_kind(value)}"
            )
            return
        if slot.kind == RESOURCE:
            self.resource(value, here, scope if slot.key == "contained" else None)
            return
        if not value or (len(value) == 1 and "id" in value):
            self.error("invariant", here, "ele-1: All FHIR elements must have a @value or children")
        node = slot.node or self.models.node_of(slot)
        self.walk(value, node, here, scope)
        code = slot.code
        if code == "Reference":
            self._reference(value, slot, here, scope)
        elif code == "Extension":
            has_value = any(k.startswith(("value", "_value")) for k in value)
            if ("extension" in value) == has_value:
                self.error(
                    "invariant", here, "ext-1: Must have either extensions or value[x], not both"
                )
        elif slot.binding is not None and code in ("CodeableConcept", "Coding"):
            expansion = self.v.terminology.expand(slot.binding)
            codings = value.get("coding") if code == "CodeableConcept" else [value]
            if expansion and coding_matches(codings, expansion) is False:
                self.error(
                    "code-invalid",
                    here,
                    f"no coding is in the required value set {slot.binding}",
                )
        if slot.element.constraints:
            ctx = None if slot.element.choice else node
            self.constraints(slot.element.constraints, value, ctx, slot.base_path, here, scope)

    def _null(self, obj: dict[str, Any], slot: Slot, path: str, i: int) -> None:
        companion = obj.get("_" + slot.key)
        if i >= 0 and type(companion) is list and i < len(companion) and companion[i] is not None:
            return
        where = _at(path, slot.key, i)
        if i >= 0:
            self.error("value", where, f"null is only allowed when _{slot.key} has an entry at {i}")
        else:
            self.error("value", where, "null is not allowed; omit the element instead")

    def _other_key(
        self, obj: dict[str, Any], key: str, value: Any, node: TypeNode, path: str, scope: Scope
    ) -> None:
        if key[:1] == "_":
            slot = node.slots.get(key[1:])
            if slot is not None and slot.kind == PRIMITIVE:
                self._companion(obj, key, value, slot, path, scope)
                return
        elif key == "resourceType" and node.is_resource and obj is scope.env.resource:
            return
        self.error("structure", f"{path}.{key}", f"unknown element {key!r} in {node.path}")

    def _companion(
        self, obj: dict[str, Any], key: str, value: Any, slot: Slot, path: str, scope: Scope
    ) -> None:
        base = obj.get(slot.key)
        if not slot.is_array:
            if type(value) is list:
                self.error("structure", f"{path}.{key}", "must be a single object, not an array")
            else:
                self._primitive_element(value, f"{path}.{slot.key}", base is not None, scope)
            return
        if type(value) is not list:
            self.error("structure", f"{path}.{key}", f"must be an array parallel to {slot.key}")
            return
        if base is not None and (type(base) is not list or len(base) != len(value)):
            self.error("structure", f"{path}.{key}", f"must have as many items as {slot.key}")
            base = None
        for i, ext in enumerate(value):
            has_value = type(base) is list and base[i] is not None
            if ext is None:
                if base is None:  # else a null on both sides was reported with the value
                    self.error("value", f"{path}.{key}[{i}]", "null without a value in " + slot.key)
                continue
            self._primitive_element(ext, f"{path}.{slot.key}[{i}]", has_value, scope)

    def _primitive_element(self, ext: Any, path: str, has_value: bool, scope: Scope) -> None:
        if type(ext) is not dict:
            self.error(
                "value", path, f"expected a JSON object (id/extension), got {json_kind(ext)}"
            )
            return
        if not ext or (not has_value and "extension" not in ext):
            self.error("invariant", path, "ele-1: All FHIR elements must have a @value or children")
        self.walk(ext, self.v.element_node, path, scope)

    def _reference(self, value: dict[str, Any], slot: Slot, path: str, scope: Scope) -> None:
        ref = value.get("reference")
        if type(ref) is not str or not ref:
            return  # a wrong JSON type was already reported by the primitive check
        if ref[0] == "#":
            scope.local_refs.add(ref)
        problem = self.v.references.check(
            ref,
            contained_ids=scope.contained_ids,
            in_contained=scope.in_contained,
            allow_conditional=self.allow_conditional,
            targets=slot.targets,
        )
        if problem is not None:
            self.error("value", f"{path}.reference", problem)

    def constraints(
        self,
        constraints: tuple[Constraint, ...],
        value: Any,
        ctx: TypeNode | None,
        base_path: str,
        path: str,
        scope: Scope,
    ) -> None:
        env = scope.env
        for c in constraints:
            run = c.compiled or self.v.invariants.runner(c, ctx, base_path)
            env.context = value
            if run(value, env) is False:
                note = " (best practice)" if c.best_practice else ""
                severity = "error" if c.severity == "error" else "warning"
                self.error("invariant", path, f"{c.key}: {c.human}{note}", severity)


def _at(path: str, key: str, i: int) -> str:
    return f"{path}.{key}" if i < 0 else f"{path}.{key}[{i}]"
