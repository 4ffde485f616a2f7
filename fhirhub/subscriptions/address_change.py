"""Changes of a subscriber's address: marked at write time, audited, verified before use.

Whoever may write an Endpoint or Subscription (its owner, an admin: fhirhub/auth/
write_rules.py) can point it somewhere else, and from then on full resources of patients
go there. So a change of address (Endpoint.address, Subscription.channel.endpoint) is
1. marked on the new version by the server: extension ADDRESS_CHANGE with the new and the
   previous address, who changed it (principal key, or `operator` without a token), when,
   and a nonce. Later writes that keep the address keep the mark; whatever a client sends
   in its place is ignored, so it can be neither forged nor removed;
2. audited once committed: a reaction (worker) writes an AuditEvent to the audit log per
   change (its id is derived from the nonce, so a repeated reaction adds nothing);
3. verified before use: the worker sends a verification ping (an empty signed POST with
   `X-Fhirhub-Verification: {nonce}`) to the new address and sends data there only once a
   ping was answered 2xx (fhirhub/worker/verification.py). Until then the subscriber's
   queue waits, with the usual retries, so nothing is lost and nothing leaks.
A new subscriber has no mark: its creator chose the address. Masked header values (as
reads show them) are restored only for the same address, so a stored credential never
follows a change of address (fhirhub/subscriptions/hooks.py).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any

from fhirhub.storage.store import fhir_instant
from fhirhub.subscriptions.model import ADDRESS_CHANGE, TAG_SYSTEM, address_change

OPERATOR = "operator"
DCM = "http://dicom.nema.org/resources/ontology/DCM"


def destination(resource: dict[str, Any]) -> str:
    if resource.get("resourceType") == "Subscription":
        return str((resource.get("channel") or {}).get("endpoint") or "")
    return str(resource.get("address") or "")


def mark(resource: dict[str, Any], previous: dict[str, Any] | None, by: str, now: datetime) -> None:
    """Set the server's address-change mark on a version about to be written."""
    kept = [
        e
        for e in resource.get("extension") or []
        if not (isinstance(e, dict) and e.get("url") == ADDRESS_CHANGE)
    ]
    new_address = destination(resource)
    if previous is None:
        change = None
    elif destination(previous) == new_address:
        change = address_change(previous)
    else:
        change = {
            "address": new_address,
            "previous": destination(previous),
            "by": by,
            "changed": fhir_instant(now),
            "nonce": secrets.token_hex(12),
        }
    if change:
        parts = [{"url": k, "valueString": v} for k, v in change.items() if v]
        kept.append({"url": ADDRESS_CHANGE, "extension": parts})
    if kept:
        resource["extension"] = kept
    else:
        resource.pop("extension", None)


def audit_record(reference: str, version: int, change: dict[str, str]) -> dict[str, Any]:
    """The audit-log record (shape of fhirhub/api/auth_audit.py) of one address change."""
    changed = datetime.fromisoformat(change.get("changed", "").replace("Z", "+00:00"))
    digest = hashlib.sha256(f"{reference}|{change.get('nonce')}".encode()).hexdigest()[:12]
    event_id = f"{int(changed.timestamp() * 1000):013d}-{digest}"  # time-ordered, stable
    who = change.get("by") or OPERATOR
    description = (
        f"{reference} now notifies {change.get('address') or '(no address)'} instead of "
        f"{change.get('previous') or '(no address)'}; data goes there after a verification ping"
    )
    resource = {
        "resourceType": "AuditEvent",
        "id": event_id,
        "type": {"system": DCM, "code": "110100", "display": "Application Activity"},
        "subtype": [{"system": TAG_SYSTEM, "code": "notification-address-change"}],
        "action": "U",
        "recorded": change.get("changed"),
        "outcome": "0",
        "outcomeDesc": description[:1000],
        "agent": [{"who": {"display": who}, "name": who, "requestor": True}],
        "source": {"observer": {"display": "fhirhub"}},
        "entity": [
            {
                "what": {"reference": f"{reference}/_history/{version}"},
                "description": "subscriber",
                "detail": [
                    {"type": "address", "valueString": change.get("address") or ""},
                    {"type": "previous-address", "valueString": change.get("previous") or ""},
                ],
            }
        ],
    }
    return {
        "_id": event_id,
        "ts": changed,
        "who": [who],
        "entity": [reference],
        "patient": None,
        "action": "U",
        "outcome": "0",
        "status": 0,
        "res": resource,
    }
