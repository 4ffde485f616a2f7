"""Who may watch a subscriber's activity: its `$status` and its websocket pings.

Reading a Subscription or Endpoint is open to many tokens (both are shared, non-patient
types, and their secrets are masked: fhirhub/subscriptions/secrets.py), but its delivery
history names patients and event ids, and a bound socket learns when matching data
changes. Both are for the subscriber's owner (a Subscription's recorded owner, an
Endpoint's PractitionerRole: TokenPolicy.owns) and for unrestricted tokens (admins,
system/*.cruds) only. No policy (auth off, the CLI, the worker) is the operator: open.
Even the owner sees in `$status` only the deliveries about patients they may read now: a
practitioner taken off a team no longer learns what was sent about that patient.
"""

from __future__ import annotations

from typing import Any

from fhirhub.fhir.errors import Forbidden
from fhirhub.service import access


def check_watcher(resource_type: str, resource: dict[str, Any]) -> None:
    """Raise Forbidden unless the active token owns the subscriber or is unrestricted."""
    policy = access.active()
    if policy is None or policy.unrestricted() or policy.owns(resource_type, resource):
        return
    raise Forbidden(
        f"{resource_type}/{resource.get('id')}: only its owner or an admin may watch its "
        "notifications ($status, websocket bind)"
    )


def shown_delivery(delivery: dict[str, Any]) -> bool:
    """May the active token see this delivery record in `$status`? Those about patients
    (care-team deliveries and compartment resources) need one patient it may read now."""
    policy = access.active()
    patients = delivery.get("pat") or []
    if policy is None or policy.unrestricted() or not patients:
        return True
    return any(policy.reads_patient(str(delivery.get("t")), str(p)) for p in patients)
