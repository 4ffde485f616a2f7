"""MedicationDispense against its prescription, in the write path.

The write hook refuses (422, nothing written) a dispense whose `authorizingPrescription`
is unknown, belongs to another patient, is not active, is outside its validityPeriod,
hands over more than the order's quantity per fill, or would exceed the fills the order
allows; it returns "fill n of m" as information. The write guard then claims the fill slot
(storage/fill_claims.py) so two concurrent dispenses cannot both take the last refill.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from fhirhub.fhir.errors import Issue, Unprocessable
from fhirhub.medication.prescriptions.supply import COUNTED, allowed_fills, handed_over
from fhirhub.service import bundle_context
from fhirhub.service.write_guards import NO_TICKET, Ticket
from fhirhub.storage.documents import StoredVersion
from fhirhub.storage.fill_claims import FillClaims

Read = Callable[[str], "dict[str, Any] | None"]
Finder = Callable[[str, str, int], list[StoredVersion]]
WHERE = "MedicationDispense.authorizingPrescription"


def _refuse(message: str, where: str = WHERE) -> Unprocessable:
    return Unprocessable(message, [Issue("business-rule", message, "error", (where,))])


def orders_of(dispense: dict[str, Any]) -> list[str]:
    refs = [
        str((r or {}).get("reference", "")) for r in dispense.get("authorizingPrescription") or []
    ]
    return [r for r in refs if r]


def counts_for(dispense: dict[str, Any] | None, order_ref: str) -> bool:
    return (
        dispense is not None
        and dispense.get("status") in COUNTED
        and order_ref in orders_of(dispense)
    )


class DispenseCheck:
    def __init__(self, read: Read, find: Finder, today: Callable[[], date] | None = None):
        self.read = read
        self.find = find
        self.today = today or (lambda: datetime.now(UTC).date())

    def fills_used(self, order_ref: str, own_id: str) -> int:
        on_file = {
            v.resource_id
            for v in self.find("MedicationDispense", f"prescription={order_ref}", 1000)
            if v.resource_id != own_id and counts_for(v.resource, order_ref)
        }
        for resource_id, planned in bundle_context.planned("MedicationDispense"):
            if resource_id != own_id and counts_for(planned, order_ref):
                on_file.add(resource_id)
        return len(on_file)

    def __call__(self, dispense: dict[str, Any]) -> list[Issue]:
        notes: list[Issue] = []
        for order_ref in orders_of(dispense):
            if not order_ref.startswith("MedicationRequest/"):
                raise _refuse(f"authorizingPrescription {order_ref!r} is not a MedicationRequest")
            order = self.read(order_ref)
            if order is None:
                raise _refuse(f"{order_ref} does not exist")
            patient = (order.get("subject") or {}).get("reference")
            if (dispense.get("subject") or {}).get("reference") != patient:
                raise _refuse(
                    f"the dispense's subject is not the patient of {order_ref}",
                    "MedicationDispense.subject",
                )
            if dispense.get("status") not in COUNTED:
                continue
            notes += self._check_fill(dispense, order_ref, order)
        return notes

    def _check_fill(
        self, dispense: dict[str, Any], order_ref: str, order: dict[str, Any]
    ) -> list[Issue]:
        if order.get("status") != "active":
            raise _refuse(f"{order_ref} is {order.get('status')}: it cannot be dispensed")
        request = order.get("dispenseRequest") or {}
        when = handed_over(dispense) or self.today()
        validity = request.get("validityPeriod") or {}
        start, end = str(validity.get("start", ""))[:10], str(validity.get("end", ""))[:10]
        if (start and when.isoformat() < start) or (end and when.isoformat() > end):
            raise _refuse(
                f"{order_ref} may be dispensed from {start or '-'} to {end or '-'}, "
                f"not on {when.isoformat()}"
            )
        limit, given = request.get("quantity") or {}, dispense.get("quantity") or {}
        same_unit = (limit.get("code") or limit.get("unit")) == (
            given.get("code") or given.get("unit")
        )
        over = (
            same_unit
            and isinstance(given.get("value"), int | float)
            and isinstance(limit.get("value"), int | float)
            and given["value"] > limit["value"]
        )
        if over:
            raise _refuse(
                f"quantity {given['value']:g} is more than the {limit['value']:g} per fill "
                f"{order_ref} allows",
                "MedicationDispense.quantity",
            )
        allowed = allowed_fills(order)
        if allowed is None:
            return []
        used = self.fills_used(order_ref, str(dispense.get("id", "")))
        if used >= allowed:
            raise _refuse(
                f"{order_ref} allows {allowed} fill(s) ({allowed - 1} refill(s)) and all have "
                "been dispensed: no refills remaining"
            )
        message = (
            f"fill {used + 1} of {allowed} of {order_ref}: {allowed - used - 1} refill(s) remain"
        )
        return [Issue("informational", message, "information", (WHERE,))]


class FillTicket:
    def __init__(self, claims: FillClaims, taken: list[tuple[str, int, str]]):
        self.claims = claims
        self.taken = taken

    def commit(self) -> None:
        return None

    def abort(self) -> None:
        for order_ref, slot, holder in self.taken:
            self.claims.release(order_ref, slot, holder)


class FillGuard:
    """The write guard of MedicationDispense: one fill slot per counting dispense."""

    def __init__(self, claims: FillClaims, read: Read):
        self.claims = claims
        self.read = read

    def _counts(self, holder: str, order_ref: str) -> bool | None:
        holder_id = holder.partition("/")[2]
        for resource_id, planned in bundle_context.planned("MedicationDispense"):
            if resource_id == holder_id:
                return counts_for(planned, order_ref)
        found = self.read(holder)
        return None if found is None else counts_for(found, order_ref)

    def before(
        self,
        resource_type: str,
        resource_id: str,
        new: dict[str, Any] | None,
        current: StoredVersion | None,
    ) -> Ticket:
        if new is None or new.get("status") not in COUNTED:
            return NO_TICKET  # a slot whose holder stops counting is taken over later
        holder = f"MedicationDispense/{resource_id}"
        taken: list[tuple[str, int, str]] = []
        for order_ref in orders_of(new):
            order = self.read(order_ref) or {}
            allowed = allowed_fills(order)
            if allowed is None:
                continue
            slot, fresh = self.claims.take(order_ref, allowed, holder, self._counts)
            if slot < 0:
                FillTicket(self.claims, taken).abort()
                raise _refuse(f"{order_ref}: no refills remaining (a concurrent dispense took it)")
            if fresh:
                taken.append((order_ref, slot, holder))
        return FillTicket(self.claims, taken) if taken else NO_TICKET
