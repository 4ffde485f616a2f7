"""Who is monitored, for what, and against which bounds (pure over FHIR resources).

A patient is enrolled by an active CarePlan with the RPM category (CATEGORY below, or the
text "remote patient monitoring"), whose activities name the measures (detail.code, LOINC)
and how often a reading is expected (detail.scheduledTiming.repeat: frequency per period
periodUnit). Its goals' targets (Goal.target.measure + detailRange, or detailQuantity with a
comparator) replace the shipped bounds for that measure. An active Device assigned to the
patient (Device.patient) also enrols them, for every measure, with the shipped bounds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from fhirhub.monitoring.readings.observations import codes_of
from fhirhub.monitoring.readings.units import BY_CODE, BY_NAME, to_canonical

CATEGORY_SYSTEM = "https://fhirhub.example/fhir/CodeSystem/monitoring"
CATEGORY = "rpm"
UNITS = {"s": 1, "min": 60, "h": 3600, "d": 86400, "wk": 604800, "mo": 2592000}


@dataclass
class Enrolment:
    patient: str
    plan: str | None  # "CarePlan/id", None when enrolled by a Device only
    measures: set[str] = field(default_factory=set)  # empty: every measure
    expected: dict[str, timedelta] = field(default_factory=dict)  # measure -> interval
    bounds: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    organization: str | None = None

    def monitors(self, measure: str) -> bool:
        return not self.measures or measure in self.measures

    def bound(self, measure: str) -> tuple[float | None, float | None]:
        return self.bounds.get(measure, (None, None))


def is_rpm_plan(plan: dict[str, Any]) -> bool:
    if plan.get("status") != "active":
        return False
    for category in plan.get("category") or []:
        if not isinstance(category, dict):
            continue
        if str(category.get("text", "")).lower() == "remote patient monitoring":
            return True
        for coding in category.get("coding") or []:
            if coding.get("system") == CATEGORY_SYSTEM and coding.get("code") == CATEGORY:
                return True
    return False


def interval(timing: Any) -> timedelta | None:
    repeat = timing.get("repeat") if isinstance(timing, dict) else None
    if not isinstance(repeat, dict):
        return None
    period, unit = repeat.get("period"), repeat.get("periodUnit")
    frequency = repeat.get("frequency") or 1
    if not isinstance(period, int | float) or unit not in UNITS or period <= 0:
        return None
    return timedelta(seconds=period * UNITS[unit] / frequency)


def from_plan(patient: str, plan: dict[str, Any], goals: list[dict[str, Any]]) -> Enrolment:
    enrolment = Enrolment(patient, f"CarePlan/{plan.get('id')}")
    for activity in plan.get("activity") or []:
        detail = activity.get("detail") if isinstance(activity, dict) else None
        if not isinstance(detail, dict):
            continue
        for code in codes_of(detail.get("code")):
            measure = BY_CODE.get(code)
            names = (
                [measure.name]
                if measure
                else (["systolic", "diastolic"] if code == "85354-9" else [])
            )
            for name in names:
                enrolment.measures.add(name)
                every = interval(detail.get("scheduledTiming"))
                if every is not None:
                    enrolment.expected[name] = every
    for goal in goals:
        for target in goal.get("target") or []:
            _apply_target(enrolment, target)
    return enrolment


def _apply_target(enrolment: Enrolment, target: Any) -> None:
    """A target without a measure or a usable bound is ignored (documented)."""
    if not isinstance(target, dict):
        return
    measure = next((BY_CODE[c] for c in codes_of(target.get("measure")) if c in BY_CODE), None)
    if measure is None:
        return
    low, high = enrolment.bound(measure.name)

    def value(quantity: Any) -> float | None:
        if not isinstance(quantity, dict) or not isinstance(quantity.get("value"), int | float):
            return None
        unit = quantity.get("code") or quantity.get("unit") or measure.unit
        return to_canonical(measure, float(quantity["value"]), str(unit))

    if isinstance(target.get("detailRange"), dict):
        low = value(target["detailRange"].get("low")) or low
        high = value(target["detailRange"].get("high")) or high
    elif isinstance(target.get("detailQuantity"), dict):
        quantity = target["detailQuantity"]
        bound = value(quantity)
        if quantity.get("comparator") in ("<", "<="):
            high = bound if bound is not None else high
        elif quantity.get("comparator") in (">", ">="):
            low = bound if bound is not None else low
    enrolment.bounds[measure.name] = (low, high)


def measure_names() -> list[str]:
    return sorted(BY_NAME)
