"""Fills, supply and proportion of days covered (pure), with worked examples of the PQA
measure's arithmetic: days covered from the first fill to the end of the period, early
refills shifted to follow the fill they overlap."""

from __future__ import annotations

from datetime import date, timedelta

from fhirhub.medication.prescriptions.supply import (
    Fill,
    allowed_fills,
    covered_intervals,
    duration_days,
    fill_of,
    pdc,
    supply_end,
)

D0 = date(2026, 1, 1)


def day(n: int) -> date:
    return D0 + timedelta(days=n)


def test_allowed_fills_follow_number_of_repeats() -> None:
    assert allowed_fills({}) is None  # no dispenseRequest: not limited
    assert allowed_fills({"dispenseRequest": {}}) == 1  # no repeats: the first fill only
    assert allowed_fills({"dispenseRequest": {"numberOfRepeatsAllowed": 3}}) == 4


def test_days_supply_from_the_dispense_or_the_order() -> None:
    assert duration_days({"value": 30, "unit": "days"}) == 30
    assert duration_days({"value": 2, "code": "wk"}) == 14
    assert duration_days({"value": 0, "code": "d"}) is None
    order = {"dispenseRequest": {"expectedSupplyDuration": {"value": 90, "code": "d"}}}
    dispense = {"id": "1", "status": "completed", "whenHandedOver": "2026-01-01T10:00:00Z"}
    assert fill_of(dispense, order) == Fill(D0, 90, "MedicationDispense/1")
    assert fill_of({**dispense, "daysSupply": {"value": 30, "code": "d"}}, order).days == 30
    assert fill_of({**dispense, "status": "cancelled"}, order) is None


def test_early_refills_are_shifted() -> None:
    fills = [Fill(day(0), 30), Fill(day(25), 30)]
    assert covered_intervals(fills) == [(day(0), day(30)), (day(30), day(60))]
    assert supply_end(fills) == day(60)


def test_pdc_worked_examples() -> None:
    # 30-day fills on days 0, 30 and 75 over a 90-day period: 30 + 30 + 15 days covered.
    coverage = pdc([Fill(day(0), 30), Fill(day(30), 30), Fill(day(75), 30)], day(0), day(89))
    assert coverage is not None
    assert (coverage.days_covered, coverage.days_in_period, coverage.fills) == (75, 90, 3)
    assert round(coverage.pdc, 3) == 0.833
    # The period starts at the first fill in it (index date), not at the period's start.
    late = pdc([Fill(day(30), 30), Fill(day(60), 30)], day(0), day(89))
    assert late is not None and (late.days_covered, late.days_in_period) == (60, 60)
    # A fill before the period that still covers its first days counts for those days.
    carried = pdc([Fill(day(-10), 30), Fill(day(20), 30)], day(0), day(59))
    assert carried is not None and carried.days_covered == 50 and carried.days_in_period == 60
    assert pdc([Fill(day(-40), 30)], day(0), day(30)) is None
