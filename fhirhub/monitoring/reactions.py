"""Reactions the worker runs on committed changes (never inside the client's request).

An Observation with monitored readings of an enrolled patient is evaluated against that
patient's rules under a per-patient claim (two worker threads never judge one patient at
once); a Task of an alert that is completed or cancelled by the team closes its Flag, and
one accepted stops its escalation.
"""

from __future__ import annotations

from datetime import datetime

from fhirhub.monitoring.alerts import model as model
from fhirhub.monitoring.alerts.book import ESCALATE, FINISHED_TASK, OPEN_TASK, AlertBook
from fhirhub.monitoring.context import HISTORY, Context
from fhirhub.monitoring.enrolment.plans import Enrolment
from fhirhub.monitoring.readings.observations import Reading, readings
from fhirhub.monitoring.risk.news2 import NEWS_MEASURES, recompute
from fhirhub.monitoring.rules.apply import evaluate_measure, fires, flag_reading, rules_for
from fhirhub.monitoring.rules.verdicts import Point, reach
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
    monitored = [r for r in found if enrolment.monitors(r.measure)]
    if not monitored:
        return "not monitored for these measures"
    if not context.claims.held([claim_key(patient)]) and _quiet(context, enrolment, monitored):
        return "in range"
    with context.claims.holding([claim_key(patient)]):
        return _judge(context, enrolment, monitored, event)


def _series(context: Context, enrolment: Enrolment, reading: Reading) -> list[Point]:
    """The measure's readings from as far back as its rules look (rules.verdicts.reach)."""
    assert reading.effective is not None
    rules = rules_for(context, enrolment, reading.measure)
    since = reach(rules, reading.effective, HISTORY)
    return context.points(enrolment.patient, reading.measure, since)


def _quiet(context: Context, enrolment: Enrolment, monitored: list[Reading]) -> bool:
    """True when the readings would change no alert: all usable, no rule fires, no alert
    of their rules (nor a missing-data alert) open, no NEWS2 to recompute. Then the
    patient's claim is not needed: the caller saw it free before this looked, so a
    reaction holding it now started after this reading was committed and sees it. Only
    the missing-data checks are re-planned (their timer re-checks the latest reading)."""
    patient = enrolment.patient
    if any(not r.usable for r in monitored) or _news_due(enrolment, monitored):
        return False
    book = AlertBook(context)
    # The series first: a reading that fires goes to the claim at once, one read wasted.
    series = {id(r): _series(context, enrolment, r) for r in monitored}
    if any(fires(book, enrolment, r, series[id(r)]) for r in monitored):
        return False
    book.prefetch(patient, _rule_ids(context, enrolment, monitored))
    if book.any_open():
        return False
    for reading in monitored:
        assert reading.effective is not None
        plan_missing(book, enrolment, reading.measure, reading.effective, series[id(reading)])
    return True


def _news_due(enrolment: Enrolment, monitored: list[Reading]) -> bool:
    news_monitored = all(enrolment.monitors(m) for m in NEWS_MEASURES)
    return news_monitored and any(r.usable and r.measure in NEWS_MEASURES for r in monitored)


def _rule_ids(context: Context, enrolment: Enrolment, monitored: list[Reading]) -> list[str]:
    """The rules the readings bear on, and the missing-data rule (any reading closes it)."""
    measures = sorted({r.measure for r in monitored if r.usable})
    ids = [r.id for m in measures for r in rules_for(context, enrolment, m)]
    return ids + (["missing-data"] if enrolment.expected else [])


def _judge(
    context: Context, enrolment: Enrolment, monitored: list[Reading], event: ChangeEvent
) -> str:
    """Under the patient's claim: apply every rule's verdict to the patient's alerts."""
    patient = enrolment.patient
    observation = event.resource or {}
    notes: list[str] = []
    book = AlertBook(context)
    book.prefetch(patient, _rule_ids(context, enrolment, monitored))
    for reading in monitored:
        if not reading.usable or reading.effective is None:
            notes.append(flag_reading(context, patient, reading, event.key))
            continue
        device = (observation.get("device") or {}).get("reference") or ""
        points = _series(context, enrolment, reading)
        notes += evaluate_measure(book, enrolment, reading, points, event.key, device)
        plan_missing(book, enrolment, reading.measure, reading.effective, points)
    if _news_due(enrolment, monitored):
        news = recompute(context, enrolment, event.key)
        if news:
            notes.append(news)
    return "; ".join(notes) or "in range"


def plan_missing(
    book: AlertBook, enrolment: Enrolment, measure: str, effective: datetime, points: list[Point]
) -> None:
    """Re-plan the measure's missing-data check one expected period after its latest
    reading (superseding the previous plan); a reading closes a missing-data alert."""
    every = enrolment.expected.get(measure)
    if every is None:
        return
    key = f"{MISSING}:{enrolment.patient}:{measure}"
    latest = max((p.effective for p in points), default=effective)
    latest = max(latest, effective)
    payload = {"patient": enrolment.patient, "measure": measure, "stage": 0}
    book.context.timers.plan(key, MISSING, latest + every, payload)
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
