"""The search calls notifications use: the SearchApi contract (service/search_api.py).

Restated here only because the implementation returns the parsed query from
validate_criteria where the contract says None; callers here only rely on it raising.
"""

from __future__ import annotations

from typing import Any, Protocol


class NotificationSearch(Protocol):
    def find_resources(
        self, resource_type: str, query_string: str, limit: int = 1000
    ) -> list[dict[str, Any]]: ...

    def matches(self, criteria: str, resource: dict[str, Any]) -> bool: ...

    def validate_criteria(self, criteria: str) -> object: ...

    def compartment_owners(self, resource: dict[str, Any], compartment: str) -> list[str]: ...
