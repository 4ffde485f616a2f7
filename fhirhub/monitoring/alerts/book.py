"""Opening, updating, closing and escalating alerts (writes through the services).

Called inside the patient's monitoring claim (monitoring/reactions.py), so two readings of
one patient handled at once by two worker threads cannot both open the alert for one rule.
For the same reason a book, which lives for one reaction, keeps the open alerts it found or
wrote: no one else changes this patient's alerts while the claim is held, and the alerts of
all the rules a reading concerns are found with one search.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fhirhub.monitoring.alerts import model as model
from fhirhub.monitoring.context import Context
from fhirhub.monitoring.rules.table import Rule
from fhirhub.monitoring.rules.verdicts import Point, Verdict
from fhirhub.storage.store import fhir_instant

ESCALATE = "monitoring-escalate"
RESOLVE = "monitoring-resolve"
MAX_AGE = timedelta(hours=24)  # older readings count in trends but open no alert
OPEN_TASK = frozenset({"draft", "requested", "received", "ready"})  # not yet accepted
FINISHED_TASK = frozenset({"completed", "cancelled", "failed", "rejected", "entered-in-error"})


class AlertBook:
    def __init__(self, context: Context):
        self.context = context
        self._open: dict[str, dict[str, Any] | None] = {}  # alert value -> open Flag

    def prefetch(self, patient: str, rule_ids: list[str]) -> None:
        """Find the open alerts of these rules for the patient with one search."""
        values = [model.alert_value(patient, r) for r in rule_ids]
        values = [v for v in dict.fromkeys(values) if v not in self._open]
        if not values:
            return
        tokens = ",".join(f"{model.ALERT_SYSTEM}|{v}" for v in values)
        flags = self.context.search.find_resources("Flag", urlencode({"identifier": tokens}), 1000)
        for value in values:
            self._open[value] = None
        for flag in sorted(flags, key=lambda f: str(f.get("id"))):
            if flag.get("status") != "active":
                continue
            for identifier in flag.get("identifier") or []:
                value = identifier.get("value")
                is_alert = identifier.get("system") == model.ALERT_SYSTEM
                if is_alert and value in self._open and self._open[value] is None:
                    self._open[value] = flag

    def any_open(self) -> bool:
        return any(flag is not None for flag in self._open.values())

    def open_alert(self, patient: str, rule_id: str) -> dict[str, Any] | None:
        self.prefetch(patient, [rule_id])
        return self._open[model.alert_value(patient, rule_id)]

    def _kept(self, patient: str, rule_id: str, flag: dict[str, Any] | None) -> None:
        self._open[model.alert_value(patient, rule_id)] = flag

    def apply(self, patient: str, rule: Rule, verdict: Verdict, unit: str, cause: str) -> str:
        latest = verdict.latest
        current = self.open_alert(patient, rule.id)
        if not verdict.firing or latest is None:
            if current is not None:
                self._resolve_later(current, patient, rule)
                return f"{rule.id}: in range, resolving"
            return ""
        if current is not None:
            note = self._update(current, latest, unit, rule)
            if verdict.in_range_now:
                self._resolve_later(current, patient, rule)
            else:
                self.context.timers.cancel(f"{RESOLVE}:{current['id']}")
            return note
        if self.context.clock() - latest.effective > MAX_AGE:
            return f"{rule.id}: fires on a reading older than {MAX_AGE}; no alert"
        note = self.open(patient, rule, latest, unit, cause, verdict.detail)
        if verdict.in_range_now:
            opened = self.open_alert(patient, rule.id)
            if opened is not None:
                self._resolve_later(opened, patient, rule)
        return note

    def open(
        self, patient: str, rule: Rule, point: Point, unit: str, cause: str, detail: str
    ) -> str:
        now = self.context.clock()
        stamp = fhir_instant(now)
        flag_id, task_id = model.alert_ids(patient, rule.id, cause)
        team, tiers = self.context.team_tiers(patient)
        tier = next((i for i, members in enumerate(tiers) if members), -1)
        owner = tiers[tier][0] if tier >= 0 else team
        resources = self.context.resources
        flag = model.flag(flag_id, patient, rule, point, unit, stamp)
        resources.update("Flag", flag_id, flag)
        self._kept(patient, rule.id, flag)
        task = model.task(task_id, flag_id, patient, rule, point, owner, stamp, detail)
        resources.update("Task", task_id, task)
        self.plan_escalation(flag_id, task_id, patient, rule, tier, now)
        return f"{rule.id}: opened Flag/{flag_id}"

    def plan_escalation(
        self, flag_id: str, task_id: str, patient: str, rule: Rule, tier: int, now: datetime
    ) -> None:
        self.context.timers.plan(
            f"{ESCALATE}:{flag_id}",
            ESCALATE,
            now + timedelta(minutes=rule.escalate_after_min),
            {"flag": flag_id, "task": task_id, "patient": patient, "rule": rule.id, "tier": tier},
        )

    def _update(self, flag: dict[str, Any], point: Point, unit: str, rule: Rule) -> str:
        kept = model.state(flag)
        if kept["observation"] == point.observation:
            return f"{rule.id}: already counted"
        if kept["effective"] and point.effective.isoformat() <= kept["effective"]:
            return f"{rule.id}: not newer than the alert's latest reading"
        updated = dict(flag)
        updated["extension"] = [
            e for e in flag.get("extension") or [] if e.get("url") != model.ALERT_EXTENSION
        ] + [model.extension(kept["count"] + 1, point, unit, kept["tier"])]
        self.context.resources.update("Flag", flag["id"], updated)
        for value, kept_flag in self._open.items():
            if kept_flag is not None and kept_flag.get("id") == flag["id"]:
                self._open[value] = updated
        task_id = self.task_of(flag)
        task = self.context.read("Task", task_id) if task_id else None
        if task is not None and task.get("status") not in FINISHED_TASK:
            task = {**task, "focus": {"reference": point.observation}}
            task["lastModified"] = fhir_instant(self.context.clock())
            self.context.resources.update("Task", task["id"], task)
        return f"{rule.id}: Flag/{flag['id']} count {kept['count'] + 1}"

    def task_of(self, flag: dict[str, Any]) -> str | None:
        value = (flag.get("identifier") or [{}])[0].get("value")
        query = urlencode({"identifier": f"{model.ALERT_SYSTEM}|{value}"})
        for task in self.context.search.find_resources("Task", query, 1000):
            if (task.get("reasonReference") or {}).get("reference") == f"Flag/{flag['id']}":
                return str(task["id"])
        return None

    def _resolve_later(self, flag: dict[str, Any], patient: str, rule: Rule) -> None:
        key = f"{RESOLVE}:{flag['id']}"
        if self.context.timer_store.live_plan(key) is not None:
            return  # already waiting: back in range counts from the first reading in range
        due = self.context.clock() + timedelta(minutes=rule.resolve_after_min)
        self.context.timers.plan(
            key, RESOLVE, due, {"flag": flag["id"], "patient": patient, "rule": rule.id}
        )

    def close(self, flag_id: str, reason: str, task_status: str = "cancelled") -> bool:
        flag = self.context.read("Flag", flag_id)
        if flag is None or flag.get("status") != "active":
            return False
        stamp = fhir_instant(self.context.clock())
        period = {**(flag.get("period") or {}), "end": stamp}
        self.context.resources.update(
            "Flag", flag_id, {**flag, "status": "inactive", "period": period}
        )
        for value, kept_flag in self._open.items():
            if kept_flag is not None and kept_flag.get("id") == flag_id:
                self._open[value] = None
        self.context.timers.cancel(f"{ESCALATE}:{flag_id}")
        self.context.timers.cancel(f"{RESOLVE}:{flag_id}")
        task_id = self.task_of(flag)
        task = self.context.read("Task", task_id) if task_id else None
        if task is not None and task.get("status") not in FINISHED_TASK:
            closed = {**task, "status": task_status, "statusReason": {"text": reason}}
            closed["lastModified"] = stamp
            self.context.resources.update("Task", task["id"], closed)
        return True
