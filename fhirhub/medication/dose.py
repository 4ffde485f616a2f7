"""Daily amount of an order from its dosageInstruction (pure): dose x frequency / period.

A dose in mass units (g, mg, ug/mcg) is used as given; a dose in units of the product
(tablets, capsules) is multiplied by the product's strength when the RxNorm name gives one
strength in MG (a single-ingredient solid form). Everything else is "could not check".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fhirhub.fhir.errors import Issue, Unprocessable

MASS_TO_MG = {"mg": 1.0, "g": 1000.0, "ug": 0.001, "mcg": 0.001, "ng": 0.000001}
UNIT_DOSES = {"{tbl}", "tbl", "tablet", "{tablet}", "cap", "{cap}", "capsule", "{capsule}", "1"}
PERIOD_HOURS = {
    "s": 1 / 3600,
    "min": 1 / 60,
    "h": 1.0,
    "d": 24.0,
    "wk": 168.0,
    "mo": 720.0,
    "a": 8760.0,
}
STRENGTH = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?) MG(?!/)", re.IGNORECASE)


@dataclass(frozen=True)
class DailyAmount:
    mg_per_day: float
    text: str


def strength_mg(display: str) -> float | None:
    """The one MG strength of a product name, or None (combinations, solutions, unknown)."""
    found = STRENGTH.findall(display)
    return float(found[0]) if len(found) == 1 and " / " not in display else None


def _bad(message: str, where: str) -> Unprocessable:
    return Unprocessable(message, [Issue("business-rule", message, "error", (where,))])


def _number(value: Any, where: str, what: str, *, zero_ok: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(f"{what} must be a number", where)
    if value < 0 or (value == 0 and not zero_ok):
        raise _bad(f"{what} must be greater than zero (got {value})", where)
    return float(value)


def daily_amount(
    dosage: list[dict[str, Any]], product_display: str | None
) -> tuple[DailyAmount | None, str]:
    """Total mg per day over all dosage lines, or (None, why it could not be computed).
    Impossible values (negative or zero dose, zero frequency or period) raise 422."""
    total = 0.0
    parts: list[str] = []
    for i, line in enumerate(dosage):
        where = f"MedicationRequest.dosageInstruction[{i}]"
        rates = line.get("doseAndRate") or []
        quantity = None
        for rate in rates:
            quantity = rate.get("doseQuantity") or (rate.get("doseRange") or {}).get("high")
            if quantity:
                break
        if not quantity:
            return None, f"dosage line {i + 1} has no dose quantity"
        value = _number(quantity.get("value"), f"{where}.doseAndRate[0].doseQuantity", "dose")
        unit = str(quantity.get("code") or quantity.get("unit") or "").strip()
        if unit.lower() in MASS_TO_MG:
            mg = value * MASS_TO_MG[unit.lower()]
        elif unit.lower() in UNIT_DOSES:
            strength = strength_mg(product_display or "")
            if strength is None:
                return None, f"the product's strength is not known for a dose in {unit!r}"
            mg = value * strength
        else:
            return None, f"dose unit {unit!r} cannot be converted to mg"
        repeat = (line.get("timing") or {}).get("repeat") or {}
        if not repeat:
            return None, f"dosage line {i + 1} has no timing"
        frequency = _number(
            repeat.get("frequencyMax", repeat.get("frequency", 1)), f"{where}.timing", "frequency"
        )
        period = _number(repeat.get("period", 1), f"{where}.timing", "period")
        unit_hours = PERIOD_HOURS.get(str(repeat.get("periodUnit", "d")))
        if unit_hours is None:
            return None, f"period unit {repeat.get('periodUnit')!r} is not known"
        per_day = mg * frequency * 24.0 / (period * unit_hours)
        total += per_day
        parts.append(f"{mg:g} mg x {frequency:g} per {period:g} {repeat.get('periodUnit', 'd')}")
    if not parts:
        return None, "the order has no dosageInstruction"
    return DailyAmount(total, "; ".join(parts)), ""
