"""Evaluating one rule over a patient's readings of one measure (pure).

The series is ordered by effective time. A threshold fires on the reading that triggered
the evaluation when it is out of range, unless the patient has since been back in range for
the rule's resolve time (a stale late reading opens nothing; a spike followed at once by a
normal reading opens an alert that the resolve timer then closes); without a trigger (the
resolve timer) it judges the latest reading. A trend fires when the latest reading completes
it, so a late reading takes its place in time (a weight from yesterday that arrived today).
Duplicates (same device and time) count once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from fhirhub.monitoring.rules.table import Rule


@dataclass(frozen=True)
class Point:
    effective: datetime
    value: float
    observation: str
    device: str = ""


@dataclass(frozen=True)
class Verdict:
    firing: bool
    latest: Point | None  # the reading the verdict is about
    detail: str = ""
    in_range_now: bool = False  # fired on an earlier reading; the latest is back in range


def series(points: list[Point]) -> list[Point]:
    """Ordered by effective time (then arrival), one point per device and time."""
    seen: set[tuple[str, datetime]] = set()
    out = []
    for point in sorted(points, key=lambda p: p.effective):
        key = (point.device, point.effective)
        if key not in seen:
            seen.add(key)
            out.append(point)
    return out


def reach(rules: list[Rule], trigger: datetime, longest: timedelta) -> datetime:
    """How far back the readings for judging `rules` at `trigger` must go: a threshold
    needs only the trigger and what came after it (the latest, and whether the patient has
    been back in range since), a gain its window before the trigger, a run of consecutive
    readings an unknown stretch (`longest`). Keeps the series read per reading from growing
    with months of history."""
    back = timedelta(0)
    for rule in rules:
        if rule.kind == "gain":
            back = max(back, timedelta(days=rule.window_days))
        elif rule.kind not in ("below", "above", "at-or-above"):
            back = longest
    return trigger - min(back, longest) if back else trigger


def limit_of(rule: Rule, goal: tuple[float | None, float | None]) -> float:
    """The patient's own bound from their Goal when the rule takes one, else the default."""
    low, high = goal
    if rule.goal == "low" and low is not None:
        return low
    if rule.goal == "high" and high is not None:
        return high
    return rule.value


def _out(kind: str, value: float, limit: float) -> bool:
    if kind == "below":
        return value < limit
    if kind == "above":
        return value > limit
    return value >= limit  # at-or-above, consecutive


def evaluate(
    rule: Rule, points: list[Point], limit: float, trigger: Point | None = None
) -> Verdict:
    ordered = series(points)
    if not ordered:
        return Verdict(False, None)
    latest = ordered[-1]
    if rule.kind in ("below", "above", "at-or-above"):
        latest_out = _out(rule.kind, latest.value, limit)
        if trigger is None or latest_out or not _out(rule.kind, trigger.value, limit):
            return Verdict(latest_out, latest, f"{latest.value:g} against {limit:g}")
        hold = timedelta(minutes=rule.resolve_after_min)
        firing = latest.effective - trigger.effective < hold
        return Verdict(firing, trigger, f"{trigger.value:g} against {limit:g}", in_range_now=True)
    if rule.kind == "consecutive":
        last = ordered[-rule.count :]
        firing = len(last) == rule.count and all(_out("at-or-above", p.value, limit) for p in last)
        return Verdict(
            firing, latest, f"last {len(last)}: {', '.join(f'{p.value:g}' for p in last)}"
        )
    if rule.kind == "gain":
        start = latest.effective - timedelta(days=rule.window_days)
        window = [p for p in ordered if p.effective >= start]
        lowest = min(window, key=lambda p: p.value)
        gain = round(latest.value - lowest.value, 3)
        return Verdict(gain > limit, latest, f"+{gain:g} since {lowest.effective.isoformat()}")
    return Verdict(False, latest)
