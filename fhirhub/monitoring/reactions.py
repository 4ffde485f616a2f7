"""Reactions the worker runs on committed changes (never inside the client's request).

An Observation with monitored readings of an enrolled patient is evaluated against that
patient's rules under a per-patient claim (two worker threads never judge one patient at
once); a Task of an alert that is completed or cancelled by the team closes its Flag, and
one accepted stops its escalation.
"""

from __future__ import annotations

from datetime import datetime

from fhirhub.monitoring import alerts_model as model
from fhirhub.monitoring.alerts import ESCALATE, FINISHED_TASK, OPEN_TASK, AlertBook
from fhirhub.monitoring.context import Context
from fhirhub.monitoring.enrolment import Enrolment
from fhirhub.monitoring.evaluation import evaluate_measure, flag_reading
from fhirhub.monitoring.readings import readings
from fhirhub.monitoring.risk_news2 import NEWS_MEASURES, recompute
from fhirhub.subscriptions.events import ChangeEvent

MISSING = "monitoring-missing"


def claim_key(patient: str) -> tuple[str, str]:
    return ("Patient", f"_monitoring={patient}")


def on_observation(context: Context, event: ChangeEvent) -> str | None:
    observation = event.resource
    if event.deleted or observation is None:
        return None
    found = readings(observation)
    patient = (observation.get("subject") or {}).get("reference")
    if not found or not isinstance(patient, str) or not patient.startswith("Patient/"):
        return None
    enrolment = context.enrolment(patient)
    if enrolment is None:
        return "not monitored"
    notes: list[str] = []
    with context.claims.holding([claim_key(patient)]):
        for reading in found:
            if not enrolment.monitors(reading.measure):
                continue
            if not reading.usable or reading.effective is None:
                notes.append(flag_reading(context, patient, reading, event.key))
                continue
            device = (observation.get("device") or {}).get("reference") or ""
            notes += evaluate_measure(context, enrolment, reading, event.key, device)
            plan_missing(context, enrolment, reading.measure, reading.effective)
        news_monitored = all(enrolment.monitors(m) for m in NEWS_MEASURES)
        if news_monitored and any(r.usable and r.measure in NEWS_MEASURES for r in found):
            news = recompute(context, enrolment, event.key)
            if news:
                notes.append(news)
    return "; ".join(notes) or "in range"


def plan_missing(context: Context, enrolment: Enrolment, measure: str, effective: datetime) -> None:
    """Re-plan the measure's missing-data check one expected period after its latest
    reading (superseding the previous plan); a reading closes a missing-data alert."""
    every = enrolment.expected.get(measure)
    if every is None:
        return
    key = f"{MISSING}:{enrolment.patient}:{measure}"
    latest = max(
        (p.effective for p in context.points(enrolment.patient, measure, effective)),
        default=effective,
    )
    payload = {"patient": enrolment.patient, "measure": measure, "stage": 0}
    context.timers.plan(key, MISSING, latest + every, payload)
    book = AlertBook(context)
    open_missing = book.open_alert(enrolment.patient, "missing-data")
    if open_missing is not None:
        book.close(str(open_missing["id"]), f"{measure} reading received")


def on_task(context: Context, event: ChangeEvent) -> str | None:
    task = event.resource
    if event.deleted or task is None:
        return None
    identifiers = [i for i in task.get("identifier") or [] if i.get("system") == model.ALERT_SYSTEM]
    flag_ref = (task.get("reasonReference") or {}).get("reference") or ""
    if not identifiers or not flag_ref.startswith("Flag/"):
        return None
    flag_id = flag_ref.split("/", 1)[1]
    status = task.get("status")
    if status in FINISHED_TASK:
        patient = (task.get("for") or {}).get("reference") or ""
        with context.claims.holding([claim_key(patient)]):
            closed = AlertBook(context).close(flag_id, f"Task {status}", str(status))
        return f"Flag/{flag_id} closed" if closed else None
    if status not in OPEN_TASK:
        context.timers.cancel(f"{ESCALATE}:{flag_id}")
        return f"Task {status}: escalation of Flag/{flag_id} stopped"
    return None
