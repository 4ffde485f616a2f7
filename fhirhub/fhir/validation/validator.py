"""The public entry point: validate a FHIR R4 JSON resource against the core definitions."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from fhirhub.fhir.definitions import Definitions
from fhirhub.fhir.errors import Issue
from fhirhub.fhir.validation.bindings import Terminology
from fhirhub.fhir.validation.invariants import InvariantEngine
from fhirhub.fhir.validation.model import ModelRegistry, TypeNode
from fhirhub.fhir.validation.references import ReferenceChecker
from fhirhub.fhir.validation.walker import Walk


class ResourceValidator:
    """Structure, cardinality, primitive formats, required bindings, invariants and
    reference formats of R4 resources. Types compile on first use and stay cached, so one
    long-lived instance per process is the intended use."""

    def __init__(self, definitions: Definitions) -> None:
        self.models = ModelRegistry(definitions)
        self.terminology = Terminology(definitions)
        self.invariants = InvariantEngine(self.models)
        self.references = ReferenceChecker(definitions.resource_types)

    @cached_property
    def element_node(self) -> TypeNode:
        """What a primitive's `_name` companion may hold: id and extension."""
        return self.models.datatype("Element")

    def validate(
        self, resource: dict[str, Any], *, allow_conditional_refs: bool = False
    ) -> list[Issue]:
        """All problems found (errors and warnings), each with expression like
        'Patient.name[0].given[1]'.

        allow_conditional_refs permits `Type?query` references, which only a transaction
        Bundle can resolve."""
        if not isinstance(resource, dict):
            return [Issue("structure", "a FHIR resource must be a JSON object")]
        walk = Walk(self, allow_conditional_refs)
        walk.resource(resource, None, None)
        return walk.issues
