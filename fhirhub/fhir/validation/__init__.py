"""Validation of FHIR R4 JSON resources against the official core StructureDefinitions."""

from fhirhub.fhir.validation.validator import ResourceValidator

__all__ = ["ResourceValidator"]
