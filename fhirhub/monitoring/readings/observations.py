"""Readings taken from an Observation (pure): which measures, when, normalised values.

A blood-pressure panel (85354-9) carries systolic and diastolic as components; any
component with a monitored code is read the same way. The time of a reading is its
`effectiveDateTime` (or the start of `effectivePeriod`, or `effectiveInstant`): rules
order readings by it, never by arrival.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhirhub.fhir.dates import parse_period
from fhirhub.monitoring.readings.units import BY_CODE, LOINC, Measure, normalise

USABLE_STATUS = frozenset({"final", "amended", "corrected", "preliminary"})


@dataclass(frozen=True)
class Reading:
    measure: str
    value: float | None
    effective: datetime | None
    observation: str  # "Observation/id"
    problem: str = ""  # set when the reading is stored but not compared

    @property
    def usable(self) -> bool:
        return self.value is not None and self.effective is not None and not self.problem


def codes_of(concept: Any) -> list[str]:
    if not isinstance(concept, dict):
        return []
    return [
        str(c.get("code"))
        for c in concept.get("coding") or []
        if isinstance(c, dict) and c.get("system") == LOINC and c.get("code")
    ]


def effective_time(observation: dict[str, Any]) -> datetime | None:
    raw = observation.get("effectiveDateTime") or observation.get("effectiveInstant")
    if raw is None and isinstance(observation.get("effectivePeriod"), dict):
        raw = observation["effectivePeriod"].get("start")
    if not isinstance(raw, str):
        return None
    try:
        return parse_period(raw)[0]
    except ValueError:
        return None


def measure_of(concept: Any) -> Measure | None:
    for code in codes_of(concept):
        if code in BY_CODE:
            return BY_CODE[code]
    return None


def readings(observation: dict[str, Any]) -> list[Reading]:
    """Every monitored reading in the Observation (empty when it monitors nothing)."""
    ref = f"Observation/{observation.get('id')}"
    when = effective_time(observation)
    status_problem = (
        "" if observation.get("status") in USABLE_STATUS else f"status {observation.get('status')}"
    )
    parts: list[tuple[Measure, dict[str, Any]]] = []
    top = measure_of(observation.get("code"))
    if top is not None:
        parts.append((top, observation))
    for component in observation.get("component") or []:
        if isinstance(component, dict):
            measure = measure_of(component.get("code"))
            if measure is not None:
                parts.append((measure, component))
    out = []
    for measure, holder in parts:
        quantity = holder.get("valueQuantity")
        if not isinstance(quantity, dict):
            out.append(Reading(measure.name, None, when, ref, "the reading has no valueQuantity"))
            continue
        normal = normalise(measure, quantity)
        problem = normal.problem or status_problem
        if when is None and not problem:
            problem = "the reading has no effective time"
        out.append(Reading(measure.name, normal.value, when, ref, problem))
    return out
