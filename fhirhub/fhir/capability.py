"""CapabilityStatement generated from what the server actually implements (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fhirhub import __version__

FHIR_VERSION = "4.0.1"
WEBSOCKET_EXTENSION = "http://hl7.org/fhir/StructureDefinition/capabilitystatement-websocket"


@dataclass(frozen=True)
class ResourceSupport:
    type: str
    interactions: tuple[str, ...]
    search_params: tuple[tuple[str, str, str], ...] = ()  # (name, canonical url, type)
    versioning: str = "versioned-update"
    conditional_create: bool = False
    conditional_update: bool = False
    conditional_delete: str = "not-supported"
    read_history: bool = False
    update_create: bool = False
    search_include: tuple[str, ...] = ()
    search_rev_include: tuple[str, ...] = ()
    operations: tuple[tuple[str, str], ...] = ()  # (name, OperationDefinition canonical)


@dataclass(frozen=True)
class ServerSupport:
    resources: tuple[ResourceSupport, ...]
    system_interactions: tuple[str, ...] = ()
    operations: tuple[tuple[str, str], ...] = ()  # (name, OperationDefinition canonical)
    security: Mapping[str, Any] | None = None
    formats: tuple[str, ...] = ("application/fhir+json", "json")
    patch_formats: tuple[str, ...] = field(default=())
    websocket: str | None = None  # where R4 websocket Subscriptions bind


def capability_statement(base_url: str, support: ServerSupport, date: str) -> dict[str, Any]:
    rest: dict[str, Any] = {}
    if support.websocket:
        rest["extension"] = [{"url": WEBSOCKET_EXTENSION, "valueUri": support.websocket}]
    rest.update(mode="server", resource=[_resource(r) for r in support.resources])
    if support.system_interactions:
        rest["interaction"] = [{"code": code} for code in support.system_interactions]
    if support.operations:
        rest["operation"] = [{"name": n, "definition": d} for n, d in support.operations]
    if support.security:
        rest["security"] = dict(support.security)
    statement: dict[str, Any] = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "publisher": "fhirhub",
        "kind": "instance",
        "software": {"name": "fhirhub", "version": __version__},
        "implementation": {"description": "fhirhub FHIR R4 server", "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": list(support.formats),
        "rest": [rest],
    }
    if support.patch_formats:
        statement["patchFormat"] = list(support.patch_formats)
    return statement


def _resource(r: ResourceSupport) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": r.type,
        "profile": f"http://hl7.org/fhir/StructureDefinition/{r.type}",
        "interaction": [{"code": code} for code in r.interactions],
        "versioning": r.versioning,
        "readHistory": r.read_history,
        "updateCreate": r.update_create,
        "conditionalCreate": r.conditional_create,
        "conditionalUpdate": r.conditional_update,
        "conditionalDelete": r.conditional_delete,
    }
    if r.search_include:
        out["searchInclude"] = list(r.search_include)
    if r.search_rev_include:
        out["searchRevInclude"] = list(r.search_rev_include)
    if r.search_params:
        out["searchParam"] = [
            {"name": name, "definition": url, "type": kind} for name, url, kind in r.search_params
        ]
    if r.operations:
        out["operation"] = [{"name": n, "definition": d} for n, d in r.operations]
    return out


def sorted_types(types: Iterable[str]) -> list[str]:
    return sorted(set(types))
