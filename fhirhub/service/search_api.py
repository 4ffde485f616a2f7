"""Contract of the search service used by other features (subscriptions, auth).

The implementation lives in fhirhub/service/search.py; this module only names the calls
other packages may rely on, so they can be written against it.
"""

from __future__ import annotations

from typing import Any, Protocol


class SearchApi(Protocol):
    def find_resources(
        self, resource_type: str, query_string: str, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Current versions of resources matching `query_string` (e.g. 'subject=Patient/1&
        status=active'), at most `limit`."""
        ...

    def matches(self, criteria: str, resource: dict[str, Any]) -> bool:
        """Does `resource` match `criteria` ('Observation?code=http://loinc.org|8867-4')?
        Uses the same parsed query and index extraction as the database search."""
        ...

    def validate_criteria(self, criteria: str) -> None:
        """Raise a FhirError (400) when criteria cannot be parsed or use unknown parameters."""
        ...

    def compartment_owners(self, resource: dict[str, Any], compartment: str) -> list[str]:
        """References ('Patient/123') of the compartments of type `compartment` that this
        resource belongs to, per the R4 CompartmentDefinition."""
        ...
