"""Plugging scheduling into the hub's mechanisms (called once by the composition root)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from fhirhub.fhir.errors import ConfigurationError
from fhirhub.scheduling.booking import BookingGuard
from fhirhub.scheduling.directory import Directory
from fhirhub.scheduling.operations import declarations
from fhirhub.scheduling.scheduler import HOLD_KIND, Scheduler
from fhirhub.scheduling.statistics import NoShowRates
from fhirhub.storage.slot_claims import SlotClaims
from fhirhub.storage.store import utc_now_ms
from fhirhub.storage.timers import Job
from fhirhub.timers.model import TimerKind

if TYPE_CHECKING:
    from fhirhub.hub import Hub


def register(hub: Hub) -> None:
    settings = hub.settings
    try:
        zone = ZoneInfo(settings.timezone)
    except (ValueError, KeyError) as error:
        raise ConfigurationError(f"FHIRHUB_TIMEZONE {settings.timezone!r}: {error}") from None
    directory = Directory(hub.store, hub.search, zone)
    claims = SlotClaims(hub.db)
    guard = BookingGuard(claims, directory, utc_now_ms)
    hub.write_guards["Appointment"] = guard
    scheduler = Scheduler(
        hub.resources, directory, hub.timers, timedelta(seconds=settings.hold_ttl_s), utc_now_ms
    )
    for operation in declarations(scheduler, NoShowRates(directory, utc_now_ms), zone):
        hub.operations.register(operation)

    def expire(job: Job) -> str:
        return scheduler.expire_hold(str(job.payload["appointment"]))

    hub.timer_kinds.register(TimerKind(HOLD_KIND, expire, retry_base=timedelta(seconds=2)))
    from fhirhub.scheduling.reactions import register as register_reactions
    from fhirhub.scheduling.reminders import register as register_reminders
    from fhirhub.scheduling.waitlist import register as register_waitlist

    reminders = register_reminders(hub, directory, zone)
    waitlist = register_waitlist(hub, directory, scheduler, reminders)
    register_reactions(hub, guard, directory, reminders, waitlist)
