"""Plugging care coordination into the hub's mechanisms (called once by the composition
root): write guards, access-granting types, access shares and reactions."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fhirhub.coordination.documents.amendments import AmendmentGuard, Supersede
from fhirhub.coordination.documents.operations import Documents
from fhirhub.coordination.documents.operations import declarations as document_operations
from fhirhub.coordination.messaging.access import PATIENT_FACING, MessageShares
from fhirhub.coordination.messaging.guard import BinaryGuard, CommunicationGuard
from fhirhub.coordination.messaging.notices import Notices
from fhirhub.coordination.messaging.operations import Messaging, declarations
from fhirhub.coordination.messaging.requests import CommunicationRequestGuard, fulfilment
from fhirhub.coordination.referrals import grants
from fhirhub.coordination.referrals.access import ReferralShares
from fhirhub.coordination.referrals.guard import ConsentGuard, ConsentSync, ReferralTaskGuard
from fhirhub.coordination.referrals.reactions import ROUTED, Routing
from fhirhub.reactions.registry import Reaction
from fhirhub.storage.store import utc_now_ms

if TYPE_CHECKING:
    from fhirhub.hub import Hub

Reader = Callable[[str, str], "dict[str, Any] | None"]
Writer = Callable[[dict[str, Any]], None]


def register(hub: Hub) -> None:
    read = hub.store.current_resource

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

    register_messaging(hub, read, write)
    supersede = Supersede(read, write)
    amendments = AmendmentGuard(read, supersede)
    hub.write_guards["DocumentReference"] = amendments
    hub.write_guards["Composition"] = amendments
    hub.reactions.register(
        Reaction("coordination.supersede", frozenset({"DocumentReference"}), supersede.reaction)
    )
    documents = Documents(hub.resources, hub.settings.fhir_base, utc_now_ms)
    for operation in document_operations(documents):
        hub.operations.register(operation)


def register_messaging(hub: Hub, read: Reader, write: Writer) -> None:
    limit = hub.settings.attachment_max_bytes
    messages = CommunicationGuard(read, hub.search, limit)
    hub.write_guards["Communication"] = messages
    hub.write_guards["Binary"] = BinaryGuard(limit)
    hub.access_shares.register(MessageShares(hub.search), frozenset({"Communication"}))
    hub.access_shares.patient_facing.update(PATIENT_FACING)
    for operation in declarations(Messaging(read, hub.search, write, utc_now_ms)):
        hub.operations.register(operation)
    notices = Notices(read, lambda: hub.timers, lambda: hub.channels, utc_now_ms)
    hub.timer_kinds.register(notices.kind())
    hub.reactions.register(
        Reaction(
            "coordination.message-notices", frozenset({"Communication"}), notices.message_written
        )
    )
    hub.write_guards["CommunicationRequest"] = CommunicationRequestGuard(messages)
    hub.reactions.register(
        Reaction(
            "coordination.request-notices",
            frozenset({"CommunicationRequest"}),
            notices.request_written,
        )
    )
    hub.reactions.register(
        Reaction(
            "coordination.request-fulfilment",
            frozenset({"Communication"}),
            fulfilment(read, write),
        )
    )
