"""Measures and UCUM normalisation of readings (pure).

Each monitored measure has one canonical UCUM unit; a reading in another unit is converted
before any rule sees it. Units are taken from `valueQuantity.code` when its system is UCUM,
otherwise from the `unit` display text (home devices often send only that). A unit we cannot
convert is reported, never guessed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
# Glucose C6H12O6, 180.156 g/mol: 1 mmol/L = 18.0156 mg/dL.
GLUCOSE_MG_PER_DL_PER_MMOL_L = 18.0156


@dataclass(frozen=True)
class Measure:
    name: str
    codes: tuple[str, ...]  # LOINC codes that carry it
    unit: str  # canonical UCUM code
    plausible: tuple[float, float]  # outside this the value is impossible (not compared)
    conversions: dict[str, Callable[[float], float]]


def _same(value: float) -> float:
    return value


def _f_to_c(value: float) -> float:
    return (value - 32.0) * 5.0 / 9.0


def _k_to_c(value: float) -> float:
    return value - 273.15


def _per_min() -> dict[str, Callable[[float], float]]:
    return {u: _same for u in ("/min", "1/min", "{beats}/min", "{breaths}/min", "bpm", "beats/min")}


MEASURES: tuple[Measure, ...] = (
    Measure("heart-rate", ("8867-4",), "/min", (1, 350), _per_min()),
    Measure("respiratory-rate", ("9279-1",), "/min", (1, 120), _per_min()),
    Measure("systolic", ("8480-6",), "mm[Hg]", (20, 350), {"mm[Hg]": _same, "mmHg": _same}),
    Measure("diastolic", ("8462-4",), "mm[Hg]", (10, 250), {"mm[Hg]": _same, "mmHg": _same}),
    Measure("spo2", ("59408-5", "2708-6"), "%", (30, 100), {"%": _same}),
    Measure(
        "temperature",
        ("8310-5",),
        "Cel",
        (25, 46),
        {
            "Cel": _same,
            "°C": _same,
            "[degF]": _f_to_c,
            "°F": _f_to_c,
            "degF": _f_to_c,
            "K": _k_to_c,
        },
    ),
    Measure(
        "weight",
        ("29463-7",),
        "kg",
        (0.3, 650),
        {
            "kg": _same,
            "g": lambda v: v / 1000.0,
            "[lb_av]": lambda v: v * 0.45359237,
            "lb": lambda v: v * 0.45359237,
            "lbs": lambda v: v * 0.45359237,
        },
    ),
    Measure(
        "glucose",
        ("2339-0", "15074-8"),
        "mmol/L",
        (0.5, 60),
        {
            "mmol/L": _same,
            "mg/dL": lambda v: v / GLUCOSE_MG_PER_DL_PER_MMOL_L,
        },
    ),
)
BY_CODE = {code: m for m in MEASURES for code in m.codes}
BY_NAME = {m.name: m for m in MEASURES}
PANEL_BP = "85354-9"


@dataclass(frozen=True)
class Normalised:
    value: float | None  # in the measure's canonical unit; None when not convertible
    problem: str = ""  # why it is not compared ("unknown unit", "impossible value")


def normalise(measure: Measure, quantity: dict[str, object]) -> Normalised:
    value = quantity.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return Normalised(None, "the reading has no numeric value")
    code = quantity.get("code") if quantity.get("system") == UCUM else None
    unit = code if isinstance(code, str) else quantity.get("unit")
    if not isinstance(unit, str) or not unit:
        return Normalised(None, f"the {measure.name} reading has no unit")
    convert = measure.conversions.get(unit)
    if convert is None:
        return Normalised(None, f"unknown unit {unit[:40]!r} for {measure.name}")
    converted = round(convert(float(value)), 3)
    low, high = measure.plausible
    if not low <= converted <= high:
        return Normalised(
            None, f"impossible {measure.name} {converted:g} {measure.unit} ({low:g}-{high:g})"
        )
    return Normalised(converted)


def to_canonical(measure: Measure, value: float, unit: str) -> float | None:
    """A bound given in another unit (a Goal target in mg/dL), or None."""
    convert = measure.conversions.get(unit)
    return round(convert(value), 3) if convert else None
