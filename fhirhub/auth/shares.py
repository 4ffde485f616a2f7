"""Share rules (fhirhub/service/access_shares.py) as database filters of the policy.

Each rule becomes {compartment: the patient} AND its criteria, flat where possible so the
search planner still reaches candidates through the compartment's reference keys
(storage/candidates.py `compartment_offer`): a shared patient costs an indexed lookup like
a care-team patient does, never a scan of the type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fhirhub.fhir.errors import FhirError
from fhirhub.fhir.search.extract import COMPARTMENT_FIELD
from fhirhub.service.access_shares import ShareRule
from fhirhub.storage.documents import INDEX_PREFIX
from fhirhub.storage.query_translation import NOTHING, merge_filters

Document = dict[str, Any]


def share_filters(
    rules: Iterable[ShareRule],
    resource_type: str,
    actions: str,
    compartment_types: frozenset[str],
    criteria_filter: Callable[[str, str], Document],
) -> list[Document]:
    found: list[Document] = []
    for rule in rules:
        if rule.resource_type != resource_type or not rule.actions & set(actions):
            continue
        parts: list[Document] = []
        if resource_type in compartment_types and rule.patient:
            parts.append({INDEX_PREFIX + COMPARTMENT_FIELD: f"Patient/{rule.patient}"})
        elif not rule.criteria:
            continue  # never a whole type outside one compartment
        if rule.criteria:
            try:
                parts.append(criteria_filter(resource_type, rule.criteria))
            except FhirError:
                continue  # criteria this type cannot take: the rule covers nothing
        found.append(merge_filters(parts))
    return found


def patient_facing_filter(
    params: tuple[str, ...],
    patients: list[str],
    criteria_filter: Callable[[str, str], Document],
    resource_type: str,
) -> Document:
    """Only what names one of the patients through `params` (a patient's own token)."""
    refs = ",".join(f"Patient/{p}" for p in patients)
    try:
        branches = [criteria_filter(resource_type, f"{param}={refs}") for param in params]
    except FhirError:
        return {"$and": [dict(NOTHING)]}
    return {"$and": [{"$or": branches}]}
