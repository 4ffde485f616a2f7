"""Plugging care coordination into the hub's mechanisms (called once by the composition
root): write guards, access-granting types, access shares and reactions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fhirhub.coordination.referrals import grants
from fhirhub.coordination.referrals.access import ReferralShares
from fhirhub.coordination.referrals.guard import ConsentGuard, ConsentSync, ReferralTaskGuard
from fhirhub.coordination.referrals.reactions import ROUTED, Routing
from fhirhub.reactions.registry import Reaction
from fhirhub.storage.store import utc_now_ms

if TYPE_CHECKING:
    from fhirhub.hub import Hub


def register(hub: Hub) -> None:
    def read(resource_type: str, resource_id: str) -> dict[str, Any] | None:
        stored = hub.store.current(resource_type, resource_id)
        return stored.resource if stored is not None and not stored.deleted else None

    def write(resource: dict[str, Any]) -> None:
        hub.resources.update(resource["resourceType"], str(resource["id"]), resource)

    sync = ConsentSync(read, write, utc_now_ms)
    hub.write_guards["Task"] = ReferralTaskGuard(read, hub.search, sync)
    hub.write_guards["Consent"] = ConsentGuard()
    grants.register(hub.access_grants)
    hub.access_shares.register(ReferralShares(hub.search))
    routing = Routing(read, hub.search, write, sync, utc_now_ms)
    hub.reactions.register(
        Reaction("coordination.referral-consent", frozenset({"Task"}), routing.task_changed)
    )
    hub.reactions.register(
        Reaction("coordination.referral-routing", ROUTED, routing.output_written)
    )
