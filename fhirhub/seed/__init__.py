"""Deterministic, realistic FHIR R4 seed data as transaction Bundles.

The directory bundle (organizations, locations, clinicians, roles, endpoints) comes first; each
patient bundle then holds complete records that reference the directory by identifier.
"""

from fhirhub.seed.bundles import DEFAULT_PATIENTS, generate_bundles, write_bundles

__all__ = ["DEFAULT_PATIENTS", "generate_bundles", "write_bundles"]
