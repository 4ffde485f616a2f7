"""The booking rule on every write of an Appointment ($hold, $book, POST, PUT, PATCH,
transactions): no actor double-booked, enforced by claims (storage/slot_claims.py).

Before the write: the appointment's claim keys (each exclusive actor x 5-minute bucket)
are inserted; a key another appointment holds is a 409 naming the actor and the time, never
the other appointment or its patient. A claim is stale, and taken over, only when it is
older than GRACE and its owner's committed version no longer needs it (cancelled, moved, a
writer that died before committing). After the write commits, the owner's claims the new
version does not need are released; if the write fails, the ones just taken are. A
reaction on the committed change releases leftovers of a crashed writer (after GRACE).
Overbooking is an explicit per-Schedule capacity (extension schedule-overbooking): seats
0..capacity-1 per key. Past appointments (ended before now) claim nothing: that time can
no longer be booked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from fhirhub.fhir.dates import parse_period
from fhirhub.fhir.errors import BadRequest, Conflict, Unprocessable
from fhirhub.scheduling.directory import Directory
from fhirhub.scheduling.rules import appointments as appts
from fhirhub.service.write_guards import Ticket
from fhirhub.storage.documents import StoredVersion, live_resource
from fhirhub.storage.slot_claims import Held, SlotClaims
from fhirhub.storage.store import fhir_instant

GRACE = timedelta(minutes=2)  # far longer than a write takes between claim and commit
BUSY_SLOT = frozenset({"busy", "busy-unavailable", "busy-tentative", "entered-in-error"})


@dataclass
class ClaimTicket:
    claims: SlotClaims
    owner: str
    keep: set[str]  # claim keys the new version needs
    taken: list[str] = field(default_factory=list)  # claim ids taken for this write

    def commit(self) -> None:
        self.claims.release(self.owner, keep=self.keep)

    def abort(self) -> None:
        self.claims.release_ids(self.owner, self.taken)


class BookingGuard:
    def __init__(
        self, claims: SlotClaims, directory: Directory, clock: Callable[[], datetime]
    ) -> None:
        self.claims = claims
        self.directory = directory
        self.clock = clock

    def before(
        self,
        resource_type: str,
        resource_id: str,
        new: dict[str, Any] | None,
        current: StoredVersion | None,
    ) -> Ticket:
        owner = f"Appointment/{resource_id}"
        old = live_resource(current)
        now = self.clock()
        if new is not None:
            check_appointment(new, old, now, self.directory)
        keys = self._needed(new, now)
        ticket = ClaimTicket(self.claims, owner, set(keys))
        if not keys:
            return ticket
        before = {h.id for h in self.claims.owned_by(owner)}
        conflicts: list[str] = []
        taken: list[str] = []
        by_actor: dict[str, list[str]] = {}
        for key in keys:
            by_actor.setdefault(key.split("|")[0], []).append(key)
        # Every writer claims the actors in one order and stops at its first conflict: a
        # loser that went on to the next actor could take that actor's time before the
        # winner got there, and both failed (16 clients, one practitioner and one room:
        # every one a 409 under load).
        for actor in sorted(by_actor):
            actor_keys = by_actor[actor]
            capacity = self.directory.capacity(actor) if not actor.startswith("Patient/") else 1
            if conflicts:  # only named in the answer, not claimed
                missing = self._held_by_others(actor_keys, owner, capacity)
            else:
                missing = self._take(actor_keys, owner, capacity, now, taken)
            if missing:
                conflicts.append(_conflict_text(actor, missing))
        ticket.taken = [t for t in taken if t not in before]
        if conflicts:
            ticket.abort()
            raise Conflict("the time is not free: " + "; ".join(conflicts))
        return ticket

    def _needed(self, new: dict[str, Any] | None, now: datetime) -> list[str]:
        if new is None or not appts.blocking(new):
            return []
        interval = appts.period(new)
        if interval is None or interval.end <= now:
            return []
        return self.directory.claim_keys(new)

    def _take(
        self, keys: list[str], owner: str, capacity: int, now: datetime, taken: list[str]
    ) -> list[str]:
        """Claim the keys in time order; returns those not claimed (from the first one no
        seat was free for: the booking fails anyway, and stopping there lets the contender
        holding it get the rest; see slot_claims.take)."""
        pending = sorted(keys, key=_bucket)
        while pending:
            result = self.claims.take(pending, owner, 0)
            blocked = next((k for k in pending if result.get(k) is not None), None)
            taken += [f"{k}#0" for k in pending if k in result and result[k] is None]
            if blocked is None:
                return []
            rest = pending[pending.index(blocked) + 1 :]
            if not self._take_elsewhere(blocked, result[blocked], owner, capacity, now, taken):
                return [blocked, *rest]
            pending = rest
        return []

    def _held_by_others(self, keys: list[str], owner: str, capacity: int) -> list[str]:
        """The keys whose every seat another appointment holds (read, not claimed)."""

        def full(key: str) -> bool:
            holders = [self.claims.get(f"{key}#{seat}") for seat in range(capacity)]
            return all(h is not None and h.owner != owner for h in holders)

        return [key for key in keys if full(key)]

    def _take_elsewhere(
        self,
        key: str,
        holder: Held | None,
        owner: str,
        capacity: int,
        now: datetime,
        taken: list[str],
    ) -> bool:
        """Seat 0 of `key` is held by `holder`: take it over if stale, else another seat."""
        for seat in range(capacity):
            if seat:
                holder = self.claims.take([key], owner, seat).get(key)
            if holder is not None and self._stale(holder, now) and self.claims.end(holder):
                holder = self.claims.take([key], owner, seat).get(key)
            if holder is None:
                taken.append(f"{key}#{seat}")
                return True
        return False

    def _stale(self, held: Held, now: datetime) -> bool:
        at = held.at if held.at.tzinfo else held.at.replace(tzinfo=now.tzinfo)
        if now - at < GRACE:
            return False
        holder = self.directory.read(held.owner)
        return holder is None or held.key not in set(self.directory.claim_keys(holder))

    def reconcile(self, owner: str, resource: dict[str, Any] | None) -> int:
        """Release claims of `owner` its committed version does not need (a writer that
        died between claiming and committing), leaving recent ones to in-flight writes."""
        needed = set(self._needed(resource, self.clock())) if resource else set()
        cutoff = self.clock() - GRACE
        released = 0
        for held in self.claims.owned_by(owner):
            at = held.at if held.at.tzinfo else held.at.replace(tzinfo=cutoff.tzinfo)
            if held.key not in needed and at < cutoff:
                released += self.claims.end(held)
        return released


def check_appointment(
    new: dict[str, Any], old: dict[str, Any] | None, now: datetime, directory: Directory
) -> None:
    """Rules for any Appointment write beyond R4 validation."""
    interval = appts.period(new)
    if interval is not None and interval.end <= interval.start:
        raise BadRequest("Appointment.end must be after Appointment.start")
    if new.get("status") == "noshow" and (interval is None or now < interval.start):
        raise Unprocessable("an appointment can be marked noshow only after its start")
    if not appts.blocking(new):
        return
    old_slots = {s.get("reference") for s in (old or {}).get("slot") or []}
    for slot_ref in new.get("slot") or []:
        reference = str(slot_ref.get("reference", ""))
        if not reference.startswith("Slot/"):
            raise BadRequest(f"Appointment.slot must reference a Slot, not {reference[:60]!r}")
        slot = directory.read(reference)
        if slot is None:
            raise Unprocessable(f"{reference} is not known")
        if reference not in old_slots and slot.get("status") in BUSY_SLOT:
            raise Conflict(f"{reference} is {slot.get('status')}; choose a free slot")


def _bucket(key: str) -> int:
    return int(key.rsplit("|", 1)[1])


def _conflict_text(actor: str, keys: list[str]) -> str:
    minutes = sorted(int(k.split("|")[1]) for k in keys)
    start = appts.EPOCH + timedelta(minutes=minutes[0])
    end = appts.EPOCH + timedelta(minutes=minutes[-1]) + appts.GRANULARITY
    who = "already has an appointment" if actor.startswith("Patient/") else "is already booked"
    return f"{actor} {who} between {fhir_instant(start)} and {fhir_instant(end)}"


def parse_instant(text: str, name: str) -> datetime:
    return parse_period(text, name)[0]
