"""What the worker does after an Appointment change commits: release claims a crashed
writer left behind, plan/re-plan/withdraw reminders, a rebook follow-up after a no-show,
offer a freed time to the waitlist."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fhirhub.reactions.registry import Reaction
from fhirhub.scheduling.booking import BookingGuard
from fhirhub.scheduling.directory import Directory
from fhirhub.scheduling.reminders import Reminders
from fhirhub.scheduling.waitlist import Waitlist
from fhirhub.subscriptions.events import ChangeEvent

if TYPE_CHECKING:
    from fhirhub.hub import Hub


def register(
    hub: Hub,
    guard: BookingGuard,
    directory: Directory,
    reminders: Reminders,
    waitlist: Waitlist,
) -> None:
    def changed(event: ChangeEvent) -> str:
        # The committed state now, not the event's version: events of one appointment may
        # be handled out of order (retries), and only the latest decides.
        current = directory.read(event.reference)
        guard.reconcile(event.reference, current)
        planned = reminders.plan_for(event.resource_id, current)
        if current is not None and current.get("status") == "noshow":
            reminders.plan_rebook(event.resource_id)
        offered = waitlist.changed(event.reference, current)
        return f"{planned} reminders planned" + (f"; {offered}" if offered else "")

    hub.reactions.register(Reaction("scheduling.appointments", frozenset({"Appointment"}), changed))
