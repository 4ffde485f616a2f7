"""The write-check hook: synchronous checks a domain package runs before a write commits
(booking conflicts), registered per resource type by the composition root.

`before` runs after validation and access checks, right before the write, and may raise a
FhirError (nothing is written) or take something (claims) that the returned ticket then
settles: `commit()` once the write is durable, `abort()` if it did not happen. Single
writes, transactions and batches all call it, so every path gets the same rule.
"""

from __future__ import annotations

from typing import Any, Protocol

from fhirhub.storage.documents import StoredVersion


class Ticket(Protocol):
    def commit(self) -> None: ...

    def abort(self) -> None: ...


class WriteGuard(Protocol):
    def before(
        self,
        resource_type: str,
        resource_id: str,
        new: dict[str, Any] | None,
        current: StoredVersion | None,
    ) -> Ticket: ...


class NoTicket:
    def commit(self) -> None:
        return None

    def abort(self) -> None:
        return None


NO_TICKET = NoTicket()


class Tickets:
    """The tickets of a multi-entry write, settled together."""

    def __init__(self) -> None:
        self.items: list[Ticket] = []

    def add(self, ticket: Ticket) -> None:
        if ticket is not NO_TICKET:
            self.items.append(ticket)

    def commit(self) -> None:
        for ticket in self.items:
            ticket.commit()
        self.items = []

    def abort(self) -> None:
        for ticket in self.items:
            ticket.abort()
        self.items = []
