"""Document shapes of the resource store (kept out of the FHIR JSON itself).

`resources` holds the current version of each resource, keyed "Type/id", so a read by id is
an _id lookup. `history` holds every version, keyed "Type/id/version"; it doubles as the
transactional outbox: a version is written in one insert together with its delivery state
(`pub`), so no change can exist without its notification event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

RESOURCES = "resources"
HISTORY = "history"
TRANSACTIONS = "transactions"

# Outbox states of a history document. A version written by a transaction also carries
# `txn`; it stays invisible (to vread, history and the worker) while that transaction's log
# record exists, so committing is one delete, not one update per version.
PUB_PENDING = 0  # waiting for the delivery worker
PUB_DONE = 1

# Search index fields are top-level keys so FerretDB can push equality down to SQL.
INDEX_PREFIX = "s_"


def resource_key(resource_type: str, resource_id: str) -> str:
    return f"{resource_type}/{resource_id}"


def version_key(resource_type: str, resource_id: str, version: int) -> str:
    return f"{resource_type}/{resource_id}/{version}"


@dataclass(frozen=True)
class StoredVersion:
    """One version of a resource as the service layer sees it."""

    resource_type: str
    resource_id: str
    version: int
    last_updated: datetime
    deleted: bool
    resource: dict[str, Any] | None
    method: str = "PUT"  # POST (create), PUT (update), DELETE, PATCH

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> StoredVersion:
        return cls(
            resource_type=doc["t"],
            resource_id=doc["rid"],
            version=doc["v"],
            last_updated=doc["ts"],
            deleted=bool(doc.get("del")),
            resource=doc.get("res"),
            method=doc.get("m", "PUT"),
        )
