"""Plugging medication into the hub's mechanisms (called once by the composition root):
write hooks and the fill guard for MedicationDispense and refill Tasks, the reactions
(standalone DetectedIssues, refill decisions, running-out reminders), their timers and the
$refills / $medication-adherence operations. The MedicationRequest check is hub's
medication_safety write hook; the CDS services are a blueprint."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from fhirhub.medication.prescriptions import refills
from fhirhub.medication.prescriptions.adherence import Adherence, operations
from fhirhub.medication.prescriptions.alerts import prescriber_alert
from fhirhub.medication.prescriptions.dispense import DispenseCheck, FillGuard
from fhirhub.medication.safety.standalone import StandaloneIssues
from fhirhub.reactions.registry import Reaction
from fhirhub.service.resources import WriteHook
from fhirhub.storage.fill_claims import FillClaims
from fhirhub.storage.store import utc_now_ms
from fhirhub.storage.timers import Job
from fhirhub.timers.model import TimerKind

if TYPE_CHECKING:
    from fhirhub.hub import Hub

ALERT_KIND = "medication.prescriber-alert"


def reader(hub: Hub) -> Any:
    def read(reference: str) -> dict[str, Any] | None:
        resource_type, _, resource_id = reference.partition("/")
        if resource_type not in hub.definitions.resource_types or not resource_id:
            return None
        stored = hub.store.current(resource_type, resource_id)
        return None if stored is None or stored.deleted else stored.resource

    return read


def _chain(first: WriteHook | None, second: WriteHook) -> WriteHook:
    if first is None:
        return second

    def both(resource: dict[str, Any]) -> list[Any]:
        return list(first(resource) or []) + list(second(resource) or [])

    return both


def register(hub: Hub) -> None:
    read = reader(hub)
    hub.write_hooks["MedicationDispense"] = DispenseCheck(read, hub.search.find_versions)
    hub.write_hooks["Task"] = _chain(hub.write_hooks.get("Task"), refills.RefillTaskCheck(read))
    hub.write_guards["MedicationDispense"] = FillGuard(FillClaims(hub.db), read)
    for operation in operations(
        Adherence(hub.search.find_resources, lambda: hub.medication_knowledge)
    ):
        hub.operations.register(operation)
    running_out = refills.RunningOut(
        read, hub.search.find_versions, hub.timers, hub.settings.medication_refill_reminder_days
    )
    hub.reactions.register(
        Reaction(
            "medication-running-out", frozenset({"MedicationDispense"}), running_out.on_dispense
        )
    )
    hub.reactions.register(
        Reaction(
            "medication-refill-decisions",
            frozenset({"Task"}),
            lambda event: refills.on_refill_task(hub.timers, event),
        )
    )
    hub.timer_kinds.register(
        TimerKind(
            refills.RUNNING_OUT,
            lambda job: running_out.remind(hub.channels, job),
            retry_base=timedelta(seconds=5),
        )
    )
    hub.timer_kinds.register(
        TimerKind(
            refills.MESSAGE,
            lambda job: refills.send_message(read, hub.channels, job),
            retry_base=timedelta(seconds=5),
        )
    )

    def plan_alert(issue_id: str, order_ref: str) -> None:
        payload = {"issue": issue_id, "order": order_ref}
        hub.timers.plan_once([(f"{ALERT_KIND}:{issue_id}", ALERT_KIND, utc_now_ms(), payload)])

    issues = StandaloneIssues(lambda: hub.resources, hub.search.find_versions, plan_alert)
    hub.reactions.register(
        Reaction("medication-detected-issues", frozenset({"MedicationRequest"}), issues)
    )

    def alert(job: Job) -> str:
        p = job.payload
        return prescriber_alert(read, hub.channels, str(p["issue"]), str(p["order"]))

    hub.timer_kinds.register(TimerKind(ALERT_KIND, alert, retry_base=timedelta(seconds=5)))
