"""The one loader of the R4 core definitions (StructureDefinitions, SearchParameters, ...).

Pure: reads the unpacked package from disk; fetching it is the embedded/ layer's job.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import orjson

PACKAGE_VERSION = "4.0.1"
COMBINED_KINDS = (
    "StructureDefinition",
    "SearchParameter",
    "CompartmentDefinition",
    "ValueSet",
    "CodeSystem",
)

Json = dict[str, Any]


def combined_path(root: Path, kind: str) -> Path:
    return root / f"combined-{kind}.json"


class Definitions:
    """Indexes over one unpacked hl7.fhir.r4.core package, each loaded on first use."""

    def __init__(self, root: Path):
        self.root = root

    def _load(self, kind: str) -> list[Json]:
        path = combined_path(self.root, kind)
        if not path.exists():
            raise FileNotFoundError(f"FHIR definitions missing at {path}; run `fhirhub setup`")
        items: list[Json] = orjson.loads(path.read_bytes())
        return items

    @cached_property
    def structure_definitions(self) -> dict[str, Json]:
        """By canonical URL."""
        return {sd["url"]: sd for sd in self._load("StructureDefinition")}

    @cached_property
    def resource_types(self) -> dict[str, Json]:
        """Concrete resource types (no abstract bases, no profiles) by type name."""
        return {
            sd["type"]: sd
            for sd in self.structure_definitions.values()
            if sd.get("kind") == "resource"
            and not sd.get("abstract")
            and sd.get("derivation") == "specialization"
        }

    @cached_property
    def datatypes(self) -> dict[str, Json]:
        """Primitive and complex types (including abstract Element/BackboneElement) by name."""
        return {
            sd["type"]: sd
            for sd in self.structure_definitions.values()
            if sd.get("kind") in ("primitive-type", "complex-type")
            and sd.get("derivation") == "specialization"
        }

    @cached_property
    def search_parameters(self) -> list[Json]:
        return self._load("SearchParameter")

    def search_parameters_for(self, resource_type: str) -> dict[str, Json]:
        """Parameters applying to a type, by code (including Resource/DomainResource ones)."""
        out: dict[str, Json] = {}
        for sp in self.search_parameters:
            bases = sp.get("base", [])
            if (
                resource_type in bases
                or "Resource" in bases
                or (
                    "DomainResource" in bases
                    and resource_type not in ("Bundle", "Parameters", "Binary")
                )
            ):
                out[sp["code"]] = sp
        return out

    @cached_property
    def compartment_definitions(self) -> dict[str, Json]:
        """By compartment code (Patient, Encounter, ...)."""
        return {cd["code"]: cd for cd in self._load("CompartmentDefinition")}

    @cached_property
    def value_sets(self) -> dict[str, Json]:
        """By canonical URL (version suffix removed)."""
        return {vs["url"]: vs for vs in self._load("ValueSet")}

    @cached_property
    def code_systems(self) -> dict[str, Json]:
        return {cs["url"]: cs for cs in self._load("CodeSystem")}
