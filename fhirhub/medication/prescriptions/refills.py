"""Refill requests and running-out reminders.

A patient asks for a refill with a Task (code refill-request, `focus` the MedicationRequest,
`for` the patient); the write hook checks the order is the patient's and addresses the Task
to the order's requester (`owner`). A patient's own token may only request or cancel; the
prescriber accepts, rejects or completes it, and the worker tells the patient (reaction on
Task, message timer). Every counted MedicationDispense re-plans one durable reminder per
order, N days before the supply ends (FHIRHUB_REFILL_REMINDER_DAYS); the timer checks the
supply again when due, so a later dispense moves it rather than sending early.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from fhirhub.fhir.errors import Forbidden, Issue, Unprocessable
from fhirhub.medication.prescriptions.alerts import Read, message_to
from fhirhub.medication.prescriptions.dispense import Finder, counts_for, orders_of
from fhirhub.medication.prescriptions.supply import allowed_fills, fill_of, supply_end
from fhirhub.service import access
from fhirhub.storage.timers import Job
from fhirhub.subscriptions.events import ChangeEvent
from fhirhub.timers.model import Defer, Skip
from fhirhub.timers.registry import Timers

TASK_CODES = "https://fhirhub.example/fhir/CodeSystem/medication-task"
REFILL = "refill-request"
RUNNING_OUT = "medication.running-out"
MESSAGE = "medication.message"
PATIENT_STATUSES = frozenset({"requested", "cancelled"})
DECISIONS = {"accepted": "was accepted", "rejected": "was declined", "completed": "was completed"}


def is_refill_request(task: dict[str, Any]) -> bool:
    codings = (task.get("code") or {}).get("coding") or []
    return any(c.get("system") == TASK_CODES and c.get("code") == REFILL for c in codings)


def _refuse(message: str, where: str) -> Unprocessable:
    return Unprocessable(message, [Issue("business-rule", message, "error", (where,))])


class RefillTaskCheck:
    """The write hook of Task (refill requests only; other Tasks pass untouched)."""

    def __init__(self, read: Read):
        self.read = read

    def __call__(self, task: dict[str, Any]) -> list[Issue]:
        if not is_refill_request(task):
            return []
        focus = str((task.get("focus") or {}).get("reference", ""))
        order = self.read(focus) if focus.startswith("MedicationRequest/") else None
        if order is None:
            raise _refuse(
                "a refill request needs focus: an existing MedicationRequest", "Task.focus"
            )
        patient = (order.get("subject") or {}).get("reference")
        if (task.get("for") or {}).get("reference") != patient:
            raise _refuse(f"Task.for must be the patient of {focus}", "Task.for")
        policy = access.active()
        principal = policy.principal() if policy is not None else None
        acting_patient = principal is not None and principal.patient is not None
        if acting_patient and task.get("status") not in PATIENT_STATUSES:
            raise Forbidden("a patient may request or cancel a refill, not decide it")
        if not task.get("owner"):
            requester = (order.get("requester") or {}).get("reference")
            if not requester:
                raise _refuse(f"{focus} names no requester to ask for the refill", "Task.owner")
            task["owner"] = {"reference": requester}
        return []


def on_refill_task(timers: Timers, event: ChangeEvent) -> str | None:
    task = event.resource
    if event.deleted or task is None or not is_refill_request(task):
        return None
    status = str(task.get("status"))
    if status not in DECISIONS:
        return f"refill request {status}"
    patient = str((task.get("for") or {}).get("reference", ""))
    reason = (task.get("statusReason") or {}).get("text")
    text = f"Your refill request (Task/{event.resource_id}) {DECISIONS[status]}."
    if status == "rejected":
        text += " Please contact your prescriber." + (f" Reason: {reason}" if reason else "")
    payload = {
        "to": patient,
        "subject": "Your refill request",
        "text": text,
        "about": [f"Task/{event.resource_id}"],
        "category": "notification",
    }
    key = f"{MESSAGE}:refill:{event.resource_id}:{status}"
    timers.plan_once([(key, MESSAGE, datetime.now(UTC), payload)])
    return f"patient told: {status}"


def send_message(read: Read, channels: Any, job: Job) -> str:
    p = job.payload
    return message_to(
        job.key,
        str(p["to"]),
        read,
        channels,
        str(p["subject"]),
        str(p["text"]),
        tuple(p.get("about") or ()),
        str(p.get("category") or "notification"),
    )


class RunningOut:
    def __init__(self, read: Read, find: Finder, timers: Timers, days_before: int):
        self.read = read
        self.find = find
        self.timers = timers
        self.days_before = days_before

    def supply(self, order_ref: str) -> tuple[dict[str, Any] | None, date | None]:
        order = self.read(order_ref)
        dispenses = self.find("MedicationDispense", f"prescription={order_ref}", 1000)
        fills = [
            f
            for v in dispenses
            if counts_for(v.resource, order_ref) and (f := fill_of(v.resource or {}, order))
        ]
        return order, supply_end(fills)

    def due(self, end: date) -> datetime:
        return datetime.combine(end - timedelta(days=self.days_before), time(9), UTC)

    def on_dispense(self, event: ChangeEvent) -> str | None:
        if event.resource is None:
            return None
        notes = []
        for order_ref in orders_of(event.resource):
            order, end = self.supply(order_ref)
            key = f"{RUNNING_OUT}:{order_ref}"
            if order is None or order.get("status") != "active" or end is None:
                self.timers.cancel(key)
                notes.append(f"{order_ref}: no reminder")
                continue
            payload = {"order": order_ref, "end": end.isoformat()}
            self.timers.plan_if_changed(key, RUNNING_OUT, self.due(end), payload)
            notes.append(f"{order_ref}: supply ends {end.isoformat()}")
        return "; ".join(notes) or None

    def remind(self, channels: Any, job: Job) -> str:
        order_ref = str(job.payload["order"])
        order, end = self.supply(order_ref)
        if order is None or order.get("status") != "active" or end is None:
            raise Skip("the order is no longer active")
        if end.isoformat() > str(job.payload["end"]):
            raise Defer(self.due(end), f"a later dispense covers until {end.isoformat()}")
        allowed = allowed_fills(order)
        dispenses = self.find("MedicationDispense", f"prescription={order_ref}", 1000)
        used = sum(1 for v in dispenses if counts_for(v.resource, order_ref))
        left = None if allowed is None else max(0, allowed - used)
        advice = (
            "Ask your pharmacy for the next fill."
            if left is None or left > 0
            else "No refills remain: request a refill from your prescriber in your app."
        )
        text = f"Your medication ({order_ref}) runs out around {end.isoformat()}. {advice}"
        about = (order_ref,)
        patient = str((order.get("subject") or {}).get("reference", ""))
        notes: list[str] = []
        try:
            notes.append(
                message_to(
                    f"{job.key}:{end.isoformat()}:patient",
                    patient,
                    self.read,
                    channels,
                    "Time to refill",
                    text,
                    about,
                    "reminder",
                )
            )
        except Skip as why:
            notes.append(f"patient: {why}")
        continuous = any(
            c.get("code") == "continuous"
            for c in (order.get("courseOfTherapyType") or {}).get("coding") or []
        )
        requester = str((order.get("requester") or {}).get("reference", ""))
        if continuous and requester and left == 0:  # long-term, nothing left: renew
            message = (
                f"A patient's long-term medication ({order_ref}) runs out around "
                f"{end.isoformat()} with no refills left."
            )
            try:
                notes.append(
                    message_to(
                        f"{job.key}:{end.isoformat()}:prescriber",
                        requester,
                        self.read,
                        channels,
                        "Refill needed",
                        message,
                        about,
                        "reminder",
                    )
                )
            except Skip as why:
                notes.append(f"prescriber: {why}")
        return "; ".join(notes)
