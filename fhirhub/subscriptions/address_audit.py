"""The reaction that audits committed address changes (fhirhub/subscriptions/
address_change.py): one AuditEvent per change, in the audit log beside the requests'."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fhirhub.reactions.registry import Reaction
from fhirhub.subscriptions.address_change import audit_record
from fhirhub.subscriptions.events import ChangeEvent
from fhirhub.subscriptions.model import address_change

NAME = "subscriber-address-audit"
TYPES = frozenset({"Endpoint", "Subscription"})


def address_audit(record_once: Callable[[dict[str, Any]], bool]) -> Reaction:
    def handle(event: ChangeEvent) -> str | None:
        change = address_change(None if event.deleted else event.resource)
        if not change or not change.get("nonce") or not change.get("changed"):
            return None
        # Every later version keeps the mark; the record's id is the change's, so only the
        # first version carrying it adds an AuditEvent (the one the change was made in).
        added = record_once(audit_record(event.reference, event.version, change))
        return None if added else "address change already audited"

    return Reaction(NAME, TYPES, handle)
