"""Resource-level rules checked natively rather than through FHIRPath (pure): contained
resources need ids and must not nest (dom-2), carry versions (dom-4) or security labels
(dom-5), and must be referenced from their container (dom-3); a DomainResource should
have a narrative (dom-6, a best-practice warning)."""

from __future__ import annotations

from typing import Any

from fhirhub.fhir.errors import Issue
from fhirhub.fhir.validation.fhirpath_ops import Env

_DOM2 = "dom-2: If the resource is contained in another resource, it SHALL NOT contain nested "
_DOM2 += "Resources"
_DOM3 = "dom-3: If the resource is contained in another resource, it SHALL be referred to from "
_DOM3 += "elsewhere in the resource or SHALL refer to the containing resource"
_DOM4 = "dom-4: If a resource is contained in another resource, it SHALL NOT have a "
_DOM4 += "meta.versionId or a meta.lastUpdated"
_DOM5 = "dom-5: If a resource is contained in another resource, it SHALL NOT have a "
_DOM5 += "security label"
_DOM6 = "dom-6: A resource should have narrative for robust management (best practice)"


def issue(code: str, path: str, message: str, severity: str = "error") -> Issue:
    return Issue(code, f"{path}: {message}", severity, (path,))


class Scope:
    """Per-resource state: FHIRPath variables, contained ids and local '#' references."""

    __slots__ = ("contained_ids", "env", "in_contained", "local_refs", "refers_to_container")

    def __init__(self, env: Env, contained_ids: frozenset[str], in_contained: bool) -> None:
        self.env = env
        self.contained_ids = contained_ids  # of the root resource: '#id' targets
        self.in_contained = in_contained
        self.local_refs: set[str] = set()  # every '#...' reference or canonical seen
        self.refers_to_container: set[str] = set()  # contained ids that reference '#'

    def absorb(self, contained: Scope, resource: dict[str, Any]) -> None:
        """Fold in what a contained resource referenced: dom-3 counts references from
        anywhere in the container, contained resources included."""
        self.local_refs |= contained.local_refs
        if "#" in contained.local_refs and type(resource.get("id")) is str:
            self.refers_to_container.add(resource["id"])


def contained_ids(resource: dict[str, Any]) -> frozenset[str]:
    contained = resource.get("contained")
    if type(contained) is not list:
        return frozenset()
    return frozenset(c["id"] for c in contained if type(c) is dict and type(c.get("id")) is str)


def contained_resource_issues(resource: dict[str, Any], path: str) -> list[Issue]:
    out = []
    if "id" not in resource:
        out.append(issue("required", path, "a contained resource must have an id"))
    if "contained" in resource:
        out.append(issue("invariant", f"{path}.contained", _DOM2))
    meta = resource.get("meta")
    if type(meta) is dict:
        if "versionId" in meta or "lastUpdated" in meta:
            out.append(issue("invariant", f"{path}.meta", _DOM4))
        if "security" in meta:
            out.append(issue("invariant", f"{path}.meta.security", _DOM5))
    return out


def domain_resource_issues(resource: dict[str, Any], path: str, scope: Scope) -> list[Issue]:
    """dom-3 and dom-6, checked after the walk has collected the local references."""
    out = []
    contained = resource.get("contained")
    for i, c in enumerate(contained if type(contained) is list else ()):
        cid = c.get("id") if type(c) is dict else None
        if type(cid) is not str:
            continue
        if "#" + cid not in scope.local_refs and cid not in scope.refers_to_container:
            out.append(issue("invariant", f"{path}.contained[{i}]", f"{_DOM3} (id {cid!r})"))
    text = resource.get("text")
    if type(text) is not dict or "div" not in text:
        out.append(issue("invariant", path, _DOM6, "warning"))
    return out
