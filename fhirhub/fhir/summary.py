"""_summary and _elements projections of a resource (pure), per R4 search.html#summary."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from fhirhub.fhir.definitions import Definitions
from fhirhub.fhir.errors import BadRequest

SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "Resource encoded in summary mode",
}
ALWAYS_KEPT = ("resourceType", "id", "meta")
SUMMARY_MODES = ("true", "false", "text", "data", "count")


class Projector:
    def __init__(self, definitions: Definitions):
        self.definitions = definitions
        self._summary_names = lru_cache(maxsize=None)(self._compute_summary_names)

    def _compute_summary_names(self, resource_type: str) -> frozenset[str]:
        sd = self.definitions.resource_types.get(resource_type)
        if sd is None:
            return frozenset()
        names: set[str] = set()
        for element in sd["snapshot"]["element"]:
            path = element["path"]
            if path.count(".") != 1 or not (element.get("isSummary") or element.get("min", 0) > 0):
                continue
            name = path.split(".", 1)[1]
            if name.endswith("[x]"):
                stem = name[:-3]
                names.update(stem + t["code"][0].upper() + t["code"][1:] for t in element["type"])
            else:
                names.add(name)
        return frozenset(names)

    def project(
        self, resource: dict[str, Any], summary: str | None, elements: str | None
    ) -> dict[str, Any]:
        if summary and summary not in SUMMARY_MODES:
            raise BadRequest(f"_summary must be one of {', '.join(SUMMARY_MODES)}")
        if summary in (None, "false", "count") and not elements:
            return resource
        if summary == "data":
            kept = {k: v for k, v in resource.items() if k != "text"}
        elif summary == "text":
            kept = {k: v for k, v in resource.items() if k in (*ALWAYS_KEPT, "text")}
        elif summary == "true":
            names = self._summary_names(resource["resourceType"])
            kept = {
                k: v
                for k, v in resource.items()
                if k in ALWAYS_KEPT or k in names or (k.startswith("_") and k[1:] in names)
            }
        else:
            wanted = {e.strip() for e in (elements or "").split(",") if e.strip()}
            kept = {
                k: v
                for k, v in resource.items()
                if k in ALWAYS_KEPT or k in wanted or (k.startswith("_") and k[1:] in wanted)
            }
        return _mark_subsetted(kept)


def _mark_subsetted(resource: dict[str, Any]) -> dict[str, Any]:
    meta = dict(resource.get("meta") or {})
    tags = [t for t in meta.get("tag", []) if t.get("code") != "SUBSETTED"]
    meta["tag"] = [*tags, SUBSETTED]
    return {**resource, "meta": meta}
