"""A committed change as notifications see it (pure)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhirhub.storage.documents import decode_resource

# Event ids are derived from the version key, so every retry and every worker computes the
# same id and receivers can de-duplicate on it.
EVENT_NAMESPACE = uuid.UUID("5b0e2b8e-6a3c-4d0e-9a53-7f1f3c1e9b21")


@dataclass(frozen=True)
class ChangeEvent:
    key: str  # history _id "Type/id/version"
    resource_type: str
    resource_id: str
    version: int
    timestamp: datetime
    method: str
    deleted: bool
    # The version written, or for a delete the version it removed (for matching/routing).
    resource: dict[str, Any] | None

    @classmethod
    def from_history(
        cls, doc: dict[str, Any], previous: dict[str, Any] | None = None
    ) -> ChangeEvent:
        return cls(
            key=doc["_id"],
            resource_type=doc["t"],
            resource_id=doc["rid"],
            version=doc["v"],
            timestamp=doc["ts"],
            method=doc.get("m", "PUT"),
            deleted=bool(doc.get("del")),
            resource=previous if doc.get("del") else decode_resource(doc.get("res")),
        )

    @property
    def operation(self) -> str:
        if self.deleted:
            return "delete"
        return "create" if self.version == 1 or self.method == "POST" else "update"

    @property
    def event_id(self) -> str:
        return str(uuid.uuid5(EVENT_NAMESPACE, self.key))

    @property
    def reference(self) -> str:
        return f"{self.resource_type}/{self.resource_id}"

    @property
    def version_reference(self) -> str:
        return f"{self.reference}/_history/{self.version}"
