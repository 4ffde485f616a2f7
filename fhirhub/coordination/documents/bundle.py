"""A document Bundle from a Composition and what it references (pure; R4 documents.html).

Every reference in the Composition (subject, encounter, authors, attesters, custodian,
event details, section authors, focus and entries, relatesTo targets) to a resource on this
server is resolved; the Bundle holds the Composition first, then each referenced resource
once, with `identifier` (a urn:uuid) and `timestamp` (bdl-9, bdl-10, bdl-11). References
to other servers are left as they are; contained ones ("#x") live in the Composition.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

Resource = dict[str, Any]


def references(value: Any) -> Iterator[str]:
    """Every Reference.reference inside a resource, in document order."""
    if isinstance(value, dict):
        ref = value.get("reference")
        if isinstance(ref, str):
            yield ref
        for key, item in value.items():
            if key not in ("reference", "contained", "text"):
                yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def local_reference(ref: str, base: str) -> str | None:
    """ "Type/id" for a reference to this server; None for contained, external or urn."""
    if ref.startswith("#") or ref.startswith("urn:"):
        return None
    if base and ref.startswith(base + "/"):
        ref = ref[len(base) + 1 :]
    elif "://" in ref:
        return None
    parts = ref.split("/_history")[0].split("/")
    return "/".join(parts) if len(parts) == 2 and all(parts) else None


def wanted(composition: Resource, base: str) -> list[str]:
    own = f"Composition/{composition.get('id')}"
    found = [local_reference(r, base) for r in references(composition)]
    return [r for r in dict.fromkeys(found) if r and r != own]


def document(composition: Resource, resolved: list[Resource], base: str, now: datetime) -> Resource:
    entries = [composition, *resolved]
    return {
        "resourceType": "Bundle",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{uuid.uuid4()}"},
        "type": "document",
        "timestamp": now.isoformat(timespec="seconds"),
        "entry": [
            {"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r} for r in entries
        ],
    }
