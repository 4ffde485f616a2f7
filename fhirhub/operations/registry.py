"""Where operations are registered (by the composition root) and looked up."""

from __future__ import annotations

from typing import Any

from fhirhub.operations.definitions import operation_definition
from fhirhub.operations.model import Operation


class OperationRegistry:
    def __init__(self, base: str, date: str):
        self.base = base
        self.date = date
        self._operations: dict[str, Operation] = {}  # by OperationDefinition id
        self._routes: dict[tuple[str | None, str, str], Operation] = {}

    def register(self, operation: Operation) -> None:
        if operation.id in self._operations:
            raise ValueError(f"OperationDefinition/{operation.id} is registered twice")
        for level in operation.levels:
            for resource_type in operation.resource if level != "system" else (None,):
                key = (resource_type, level, operation.code)
                if key in self._routes:
                    raise ValueError(f"${operation.code} is registered twice for {key}")
                self._routes[key] = operation
        self._operations[operation.id] = operation

    def find(self, resource_type: str | None, level: str, code: str) -> Operation | None:
        return self._routes.get((resource_type, level, code))

    def routes(self) -> list[tuple[str | None, str, str]]:
        """(resource type or None, level, code) of everything registered."""
        return sorted(self._routes, key=lambda k: (k[0] or "", k[1], k[2]))

    def operations(self) -> list[Operation]:
        return [self._operations[k] for k in sorted(self._operations)]

    def definition(self, definition_id: str) -> dict[str, Any] | None:
        operation = self._operations.get(definition_id)
        return operation_definition(operation, self.base, self.date) if operation else None

    def definitions(self) -> list[dict[str, Any]]:
        return [operation_definition(o, self.base, self.date) for o in self.operations()]

    def canonical(self, operation: Operation) -> str:
        return f"{self.base}/OperationDefinition/{operation.id}"

    def by_resource(self) -> dict[str, tuple[tuple[str, str], ...]]:
        """For the CapabilityStatement: per resource type, (name, definition canonical)."""
        out: dict[str, list[tuple[str, str]]] = {}
        for operation in self.operations():
            for resource_type in operation.resource:
                out.setdefault(resource_type, []).append(
                    (operation.code, self.canonical(operation))
                )
        return {k: tuple(v) for k, v in out.items()}

    def system_level(self) -> tuple[tuple[str, str], ...]:
        return tuple((o.code, self.canonical(o)) for o in self.operations() if "system" in o.levels)
