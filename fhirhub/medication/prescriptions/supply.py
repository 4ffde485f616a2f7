"""Fills, refills and days covered (pure), from MedicationRequest.dispenseRequest and
MedicationDispense.

- Fills an order allows: 1 + dispenseRequest.numberOfRepeatsAllowed (R4: the repeats are
  refills after the initial dispense); an order without dispenseRequest is not limited.
- A dispense counts as a fill when its status is completed or in-progress.
- Days supplied: the dispense's daysSupply, else the order's expectedSupplyDuration.
- Proportion of days covered (PDC, the PQA adherence measure): from the first fill in the
  period to its end, the share of days with medication on hand; a fill that starts while
  the previous one still covers is shifted to follow it (early refills carry over).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

COUNTED = frozenset({"completed", "in-progress"})
DAYS_PER_UNIT = {"d": 1, "day": 1, "days": 1, "wk": 7, "week": 7, "weeks": 7, "mo": 30, "month": 30}


@dataclass(frozen=True)
class Fill:
    start: date
    days: int
    reference: str = ""


def allowed_fills(order: dict[str, Any]) -> int | None:
    request = order.get("dispenseRequest")
    if not isinstance(request, dict):
        return None
    repeats = request.get("numberOfRepeatsAllowed", 0)
    return 1 + int(repeats) if isinstance(repeats, int) and repeats >= 0 else 1


def duration_days(quantity: Any) -> int | None:
    if not isinstance(quantity, dict) or not isinstance(quantity.get("value"), int | float):
        return None
    unit = str(quantity.get("code") or quantity.get("unit") or "d").lower()
    per = DAYS_PER_UNIT.get(unit)
    if per is None or quantity["value"] <= 0:
        return None
    return max(1, round(quantity["value"] * per))


def handed_over(dispense: dict[str, Any]) -> date | None:
    text = dispense.get("whenHandedOver") or dispense.get("whenPrepared")
    if not isinstance(text, str) or len(text) < 10:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def fill_of(dispense: dict[str, Any], order: dict[str, Any] | None) -> Fill | None:
    if dispense.get("status") not in COUNTED:
        return None
    start = handed_over(dispense)
    days = duration_days(dispense.get("daysSupply"))
    if days is None and order is not None:
        days = duration_days((order.get("dispenseRequest") or {}).get("expectedSupplyDuration"))
    if start is None or days is None:
        return None
    return Fill(start, days, f"MedicationDispense/{dispense.get('id', '')}")


def covered_intervals(fills: list[Fill]) -> list[tuple[date, date]]:
    """[start, end) of each fill after shifting early refills to follow the previous."""
    out: list[tuple[date, date]] = []
    cursor: date | None = None
    for fill in sorted(fills, key=lambda f: f.start):
        start = fill.start if cursor is None or fill.start > cursor else cursor
        end = start + timedelta(days=fill.days)
        out.append((start, end))
        cursor = end
    return out


def supply_end(fills: list[Fill]) -> date | None:
    """The first day without medication on hand."""
    intervals = covered_intervals(fills)
    return intervals[-1][1] if intervals else None


@dataclass(frozen=True)
class Coverage:
    days_covered: int
    days_in_period: int
    fills: int

    @property
    def pdc(self) -> float:
        return self.days_covered / self.days_in_period if self.days_in_period else 0.0


def pdc(fills: list[Fill], start: date, end: date) -> Coverage | None:
    """Coverage of [start, end] (both inclusive) from the first fill in it; None when no
    fill covers any day of the period."""
    intervals = [(s, e) for s, e in covered_intervals(fills) if e > start and s <= end]
    if not intervals:
        return None
    index = max(start, intervals[0][0])
    last = end + timedelta(days=1)
    covered = sum(max(0, (min(e, last) - max(s, index)).days) for s, e in intervals)
    in_period = (last - index).days
    counted = sum(1 for s, _ in intervals if s <= end)
    return Coverage(min(covered, in_period), in_period, counted)
