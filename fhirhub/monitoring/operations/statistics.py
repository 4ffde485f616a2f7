"""Observation/$lastn and Observation/$stats (R4 operation-observation-lastn/-stats), pure
over the Observations a search returned."""

from __future__ import annotations

import math
import statistics
from typing import Any

from fhirhub.fhir.errors import BadRequest
from fhirhub.monitoring.readings.observations import effective_time, measure_of
from fhirhub.monitoring.readings.units import normalise

STATISTICS_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-statistics"
SUPPORTED = (
    "average",
    "maximum",
    "minimum",
    "count",
    "total-count",
    "median",
    "std-dev",
    "sum",
    "variance",
    "20-percent",
    "80-percent",
)


def group_key(observation: dict[str, Any]) -> str:
    """Observations are grouped by code: their codings (system|code), else the text."""
    codings = sorted(
        f"{c.get('system', '')}|{c.get('code', '')}"
        for c in (observation.get("code") or {}).get("coding") or []
        if isinstance(c, dict)
    )
    return ",".join(codings) or str((observation.get("code") or {}).get("text", ""))


def _when(observation: dict[str, Any]) -> float:
    moment = effective_time(observation)
    return moment.timestamp() if moment else -math.inf


def lastn(observations: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The latest `limit` per code, groups in order of their latest, newest first."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for observation in observations:
        groups.setdefault(group_key(observation), []).append(observation)
    ordered = [sorted(g, key=_when, reverse=True)[:limit] for g in groups.values()]
    ordered.sort(key=lambda g: _when(g[0]), reverse=True)
    return [o for group in ordered for o in group]


def _value(observation: dict[str, Any]) -> tuple[float, str] | None:
    quantity = observation.get("valueQuantity")
    if not isinstance(quantity, dict) or not isinstance(quantity.get("value"), int | float):
        return None
    measure = measure_of(observation.get("code"))
    if measure is not None:  # monitored measures combine across units (lb with kg)
        normal = normalise(measure, quantity)
        return (normal.value, measure.unit) if normal.value is not None else None
    return float(quantity["value"]), str(quantity.get("code") or quantity.get("unit") or "")


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def compute(name: str, values: list[float], total: int) -> float | int:
    if name == "total-count":
        return total
    if name == "count":
        return len(values)
    if not values:
        raise ValueError("no values")
    functions: dict[str, Any] = {
        "average": statistics.fmean,
        "maximum": max,
        "minimum": min,
        "median": statistics.median,
        "sum": math.fsum,
        "std-dev": lambda v: statistics.stdev(v) if len(v) > 1 else 0.0,
        "variance": lambda v: statistics.variance(v) if len(v) > 1 else 0.0,
        "20-percent": lambda v: _percentile(v, 0.2),
        "80-percent": lambda v: _percentile(v, 0.8),
    }
    return round(functions[name](values), 4)


def stats(
    observations: list[dict[str, Any]], wanted: list[str], subject: str, period: dict[str, str]
) -> list[dict[str, Any]]:
    """One Observation per code with a component per statistic (R4 $stats output)."""
    unknown = [w for w in wanted if w not in SUPPORTED]
    if unknown:
        raise BadRequest(
            f"statistic {unknown[0][:40]!r} is not supported (supported: {', '.join(SUPPORTED)})"
        )
    groups: dict[str, list[dict[str, Any]]] = {}
    for observation in observations:
        groups.setdefault(group_key(observation), []).append(observation)
    out = []
    for key, group in groups.items():
        values = [v for v in (_value(o) for o in group) if v is not None]
        unit = values[0][1] if values else ""
        numbers = [v for v, u in values if u == unit]
        components = []
        for name in wanted:
            coding = {"system": STATISTICS_SYSTEM, "code": name}
            component: dict[str, Any] = {"code": {"coding": [coding]}}
            if name in ("count", "total-count"):
                component["valueInteger"] = compute(name, numbers, len(group))
            elif numbers:
                component["valueQuantity"] = {"value": compute(name, numbers, len(group))}
                if unit:
                    component["valueQuantity"].update(
                        {"unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
                    )
            else:
                component["dataAbsentReason"] = {"text": "no numeric values"}
            components.append(component)
        out.append(
            {
                "resourceType": "Observation",
                "status": "final",
                "code": group[0].get("code") or {"text": key},
                "subject": {"reference": subject},
                "effectivePeriod": period,
                "component": components,
            }
        )
    return out
