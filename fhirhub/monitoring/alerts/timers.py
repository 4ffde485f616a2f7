"""Timer kinds of monitoring: escalation, back-in-range resolution, missing data.

Each job is keyed by what it is about (the alert's Flag, or patient and measure), so a
newer plan supersedes an older one: a reading re-plans its measure's missing-data check,
an accepted Task cancels its escalation.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fhirhub.channels.message import EMAIL, SMS, Message
from fhirhub.monitoring.alerts import model as model
from fhirhub.monitoring.alerts.book import ESCALATE, OPEN_TASK, RESOLVE, AlertBook
from fhirhub.monitoring.context import HISTORY, Context
from fhirhub.monitoring.reactions import MISSING, claim_key
from fhirhub.monitoring.readings.units import BY_NAME
from fhirhub.monitoring.rules.verdicts import Point, evaluate, limit_of
from fhirhub.storage.store import fhir_instant
from fhirhub.storage.timers import Job
from fhirhub.timers.model import Skip, TimerKind


def escalate(context: Context, job: Job) -> str:
    p = job.payload
    flag = context.read("Flag", str(p.get("flag")))
    task = context.read("Task", str(p.get("task")))
    if flag is None or task is None or flag.get("status") != "active":
        raise Skip("the alert is closed")
    if task.get("status") not in OPEN_TASK:
        raise Skip(f"the Task is {task.get('status')}")
    rule = context.knowledge.rule(str(p.get("rule")))
    if rule is None:
        raise Skip(f"no rule {p.get('rule')!r}")
    _, tiers = context.team_tiers(str(p.get("patient")))
    current = int(p.get("tier", -1))
    following = next((i for i in range(current + 1, len(tiers)) if tiers[i]), None)
    now = context.clock()
    priority = model.raised(str(task.get("priority") or rule.priority))
    changed: dict[str, Any] = {**task, "priority": priority, "lastModified": fhir_instant(now)}
    text = f"Escalated at {fhir_instant(now)}: not accepted within {rule.escalate_after_min:g} min"
    if following is not None:
        changed["owner"] = {"reference": tiers[following][0]}
        text += f"; now with the {context.knowledge.tiers[following][0]} tier"
    changed["note"] = [*(task.get("note") or []), {"time": fhir_instant(now), "text": text}]
    context.resources.update("Task", str(task["id"]), changed)
    if following is not None:
        AlertBook(context).plan_escalation(
            str(flag["id"]), str(task["id"]), str(p.get("patient")), rule, following, now
        )
    return f"escalated to {priority}" + (f", tier {following}" if following is not None else "")


def resolve(context: Context, job: Job) -> str:
    p = job.payload
    patient, flag_id = str(p.get("patient")), str(p.get("flag"))
    key = f"{RESOLVE}:{flag_id}"
    enrolment = context.enrolment(patient)
    rule = context.knowledge.rule(str(p.get("rule")), enrolment.organization if enrolment else None)
    with context.claims.holding([claim_key(patient)]):
        if enrolment is None or rule is None or rule.measure not in BY_NAME:
            AlertBook(context).close(flag_id, "no longer monitored")
            return "closed: no longer monitored"
        now = context.clock()
        points = context.points(patient, rule.measure, now - HISTORY)
        verdict = evaluate(rule, points, limit_of(rule, enrolment.bound(rule.measure)))
        context.timers.cancel(key)
        if verdict.firing:
            return "still out of range"
        AlertBook(context).close(flag_id, "readings back in range")
    return "closed: back in range"


def missing(context: Context, job: Job) -> str:
    """Stage 0: remind the patient (email or SMS from Patient.telecom, through the channels);
    stage 1, one expected period later: open the missing-data alert for the team."""
    p = job.payload
    patient, measure, stage = str(p.get("patient")), str(p.get("measure")), int(p.get("stage", 0))
    enrolment = context.enrolment(patient)
    if enrolment is None or measure not in enrolment.expected:
        raise Skip("no longer monitored for this measure")
    every = enrolment.expected[measure]
    now = context.clock()
    # Readings re-plan this check without the patient's claim, so two at once may leave the
    # older one's plan: the latest reading decides whether anything is missing yet.
    since = context.points(patient, measure, now - every)
    newest = max((q.effective for q in since), default=None)
    if newest is not None and newest + every > now:
        key = f"{MISSING}:{patient}:{measure}"
        context.timers.plan(key, MISSING, newest + every, {**p, "stage": 0})
        return f"a reading at {newest.isoformat()}: checked again one period after it"
    if stage == 0:
        note = _remind(context, patient, measure, job.id)
        context.timers.plan(
            f"{MISSING}:{patient}:{measure}", MISSING, now + every, {**p, "stage": 1}
        )
        return note
    rule = context.knowledge.rule("missing-data", enrolment.organization)
    if rule is None or not rule.enabled:
        raise Skip("the missing-data rule is disabled")
    book = AlertBook(context)
    with context.claims.holding([claim_key(patient)]):
        if book.open_alert(patient, rule.id) is not None:
            return "missing-data alert already open"
        points = context.points(patient, measure, now - max(HISTORY, every * 3))
        latest = max(points, key=lambda q: q.effective, default=None)
        point = latest or Point(now, 0.0, patient)
        detail = f"no {measure} reading since {point.effective.isoformat() if latest else 'ever'}"
        return book.open(patient, rule, point, BY_NAME[measure].unit, job.key, detail)


def _remind(context: Context, patient: str, measure: str, key: str) -> str:
    channels = context.channels
    resource = context.read_ref(patient) or {}
    for telecom in resource.get("telecom") or []:
        system, value = telecom.get("system"), telecom.get("value")
        channel = {"email": EMAIL, "sms": SMS}.get(str(system))
        if channel and value and channels is not None and channels.available(channel):
            message = Message(
                key=f"{key}:reminder",
                channel=channel,
                to=str(value),
                text=f"Please send your {measure.replace('-', ' ')} reading today.",
                subject="Reading reminder",
                recipient=patient,
                category="reminder",
            )
            return channels.send(message)
    return "no channel to remind the patient"


def kinds(context: Context) -> list[TimerKind]:
    def bound(handler: Any) -> Any:
        return lambda job: handler(context, job)

    return [
        TimerKind(ESCALATE, bound(escalate), retry_base=timedelta(seconds=2)),
        TimerKind(RESOLVE, bound(resolve), retry_base=timedelta(seconds=2)),
        TimerKind(MISSING, bound(missing), retry_base=timedelta(seconds=5)),
    ]
