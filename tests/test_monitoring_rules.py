"""Pure monitoring rules: UCUM normalisation, reading extraction, rule evaluation by
effective time, Goal bounds, and the rules table with a site's per-organisation overrides."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fhirhub.fhir.errors import ConfigurationError
from fhirhub.monitoring.enrolment.plans import from_plan
from fhirhub.monitoring.readings.observations import readings
from fhirhub.monitoring.readings.units import BY_NAME, normalise
from fhirhub.monitoring.rules import table as knowledge
from fhirhub.monitoring.rules.verdicts import Point, evaluate, limit_of, reach
from tests.monitoring_support import care_plan, vital

T0 = datetime(2026, 1, 10, 8, 0, tzinfo=UTC)
RULES = knowledge.load()


def q(value: float, code: str) -> dict[str, object]:
    return {"value": value, "system": "http://unitsofmeasure.org", "code": code}


def test_units_are_normalised_to_the_canonical_ucum_unit() -> None:
    assert normalise(BY_NAME["weight"], q(220, "[lb_av]")).value == pytest.approx(99.79, abs=0.01)
    assert normalise(BY_NAME["temperature"], q(101.3, "[degF]")).value == pytest.approx(38.5)
    assert normalise(BY_NAME["glucose"], q(70, "mg/dL")).value == pytest.approx(3.886, abs=0.001)
    assert normalise(BY_NAME["glucose"], q(6.1, "mmol/L")).value == 6.1
    # Only the display text (no UCUM system): read from `unit`.
    assert normalise(BY_NAME["weight"], {"value": 150, "unit": "lb"}).value == 68.039


def test_unknown_units_and_impossible_values_are_not_compared() -> None:
    assert "unknown unit" in normalise(BY_NAME["weight"], q(80, "stone")).problem
    assert "impossible" in normalise(BY_NAME["spo2"], q(120, "%")).problem
    assert "impossible" in normalise(BY_NAME["weight"], q(-3, "kg")).problem
    assert normalise(BY_NAME["spo2"], {"unit": "%"}).problem  # no value


def test_blood_pressure_panel_gives_two_readings() -> None:
    panel = {
        "resourceType": "Observation",
        "id": "bp",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
        "effectiveDateTime": "2026-01-10T08:00:00Z",
        "component": [
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                "valueQuantity": q(182, "mm[Hg]"),
            },
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
                "valueQuantity": q(95, "mm[Hg]"),
            },
        ],
    }
    found = {r.measure: r.value for r in readings(panel)}
    assert found == {"systolic": 182, "diastolic": 95}
    no_time = {**vital("Patient/p", "8867-4", 80, "/min"), "id": "x"}
    del no_time["effectiveDateTime"]
    assert readings(no_time)[0].problem == "the reading has no effective time"


def test_thresholds_judge_the_latest_reading_by_effective_time() -> None:
    rule = RULES.rules["spo2-low"]
    low = Point(T0, 86, "Observation/a")
    fine = Point(T0 + timedelta(hours=1), 95, "Observation/b")
    assert evaluate(rule, [low], 90).firing
    # The in-range reading arrived first but is later in time: the late low one opens nothing.
    assert not evaluate(rule, [fine, low], 90).firing
    # Triggered by the low reading: an alert, unless the patient has been back in range for
    # the rule's resolve time (60 min) since; the verdict is about the triggering reading.
    soon = Point(T0 + timedelta(minutes=5), 95, "Observation/c")
    verdict = evaluate(rule, [soon, low], 90, trigger=low)
    assert verdict.firing and verdict.in_range_now and verdict.latest == low
    assert not evaluate(rule, [fine, low], 90, trigger=low).firing  # 60 min in range since
    assert evaluate(RULES.rules["systolic-high"], [Point(T0, 180, "o")], 180).firing  # >=
    assert not evaluate(RULES.rules["heart-rate-high"], [Point(T0, 120, "o")], 120).firing  # >


def test_weight_gain_over_three_days_counts_a_late_reading_where_it_belongs() -> None:
    rule = RULES.rules["weight-gain-3d"]
    day = timedelta(days=1)
    points = [Point(T0, 80.0, "a"), Point(T0 + day, 81.0, "b"), Point(T0 + 2 * day, 82.2, "c")]
    assert evaluate(rule, points, 2.0).firing  # +2.2 kg in 2 days
    assert not evaluate(rule, points[1:], 2.0).firing  # +1.2 kg
    # A low reading from 4 days before the latest is outside the 3-day window...
    assert not evaluate(rule, [Point(T0 - 2 * day, 79.0, "z"), *points[1:]], 2.0).firing
    # ...but inside the 7-day rule's (> 2.5 kg: 82.2 - 79.0 = 3.2).
    assert evaluate(
        RULES.rules["weight-gain-7d"], [Point(T0 - 2 * day, 79.0, "z"), *points], 2.5
    ).firing


def test_three_consecutive_and_duplicates_count_once() -> None:
    rule = RULES.rules["systolic-high-3x"]
    hour = timedelta(hours=1)
    three = [Point(T0 + i * hour, v, f"o{i}", "Device/d") for i, v in enumerate((140, 150, 138))]
    assert evaluate(rule, three, 135).firing
    broken = [*three[:2], Point(T0 + 2 * hour, 120, "x"), three[2]]
    assert not evaluate(rule, sorted(broken, key=lambda p: p.effective)[:3], 135).firing
    # The same device and time twice is one reading: two readings are not three.
    duplicate = [three[0], Point(T0, 140, "again", "Device/d"), three[1]]
    assert not evaluate(rule, duplicate, 135).firing


def test_goal_targets_replace_the_shipped_bounds() -> None:
    goal = {
        "resourceType": "Goal",
        "target": [
            {
                "measure": {"coding": [{"system": "http://loinc.org", "code": "2339-0"}]},
                "detailRange": {
                    "low": {"value": 80, "code": "mg/dL"},
                    "high": {"value": 250, "code": "mg/dL"},
                },
            },
            {"detailQuantity": {"value": 3}},  # no measure: ignored
            {
                "measure": {"coding": [{"system": "http://loinc.org", "code": "59408-5"}]},
                "detailQuantity": {"value": 88, "comparator": ">=", "code": "%"},
            },
        ],
    }
    plan = {**care_plan("Patient/p", ["2339-0", "59408-5"]), "id": "cp"}
    enrolment = from_plan("Patient/p", plan, [goal])
    low, high = enrolment.bound("glucose")
    assert low == pytest.approx(4.441, abs=0.001) and high == pytest.approx(13.877, abs=0.001)
    assert limit_of(RULES.rules["glucose-high"], enrolment.bound("glucose")) == high
    assert limit_of(RULES.rules["spo2-low"], enrolment.bound("spo2")) == 88  # COPD target
    assert limit_of(RULES.rules["heart-rate-high"], enrolment.bound("heart-rate")) == 120


def test_a_site_overrides_rules_per_organisation(tmp_path: Path) -> None:
    site = tmp_path / "rules.json"
    site.write_text(
        json.dumps(
            {
                "rules": [{"id": "heart-rate-high", "value": 110}],
                "organizations": {
                    "Organization/copd-clinic": {
                        "spo2-low": {"value": 88},
                        "glucose-high": {"enabled": False},
                    }
                },
            }
        )
    )
    loaded = knowledge.load(str(site))
    assert loaded.rules["heart-rate-high"].value == 110
    assert loaded.rules["heart-rate-high"].source == "news2"  # the rest kept
    clinic = {r.id: r for r in loaded.for_organization("Organization/copd-clinic")}
    assert clinic["spo2-low"].value == 88 and "glucose-high" not in clinic
    elsewhere = {r.id: r for r in loaded.for_organization("Organization/other")}
    assert elsewhere["spo2-low"].value == 90 and "glucose-high" in elsewhere
    site.write_text(json.dumps({"rules": [{"id": "x", "kind": "sideways"}]}))
    with pytest.raises(ConfigurationError, match="FHIRHUB_MONITORING_RULES"):
        knowledge.load(str(site))


def test_every_shipped_rule_names_a_source() -> None:
    shipped = json.loads(knowledge.SHIPPED.read_text())
    for rule in shipped["rules"]:
        assert rule["source"] in shipped["sources"] or rule["source"] == "care plan"


def test_a_reading_reads_back_only_as_far_as_its_rules_look() -> None:
    """Thresholds need the trigger and later readings, a gain its window, a run of
    consecutive readings the longest history (the series per reading stays bounded)."""
    week = timedelta(days=8)
    rules = RULES.rules
    heart = [rules["heart-rate-high"], rules["heart-rate-low"]]
    assert reach(heart, T0, week) == T0
    weight = [rules["weight-gain-3d"], rules["weight-gain-7d"]]
    assert reach(weight, T0, week) == T0 - timedelta(days=7)
    systolic = [rules["systolic-high"], rules["systolic-high-3x"]]
    assert reach(systolic, T0, week) == T0 - week
    # The verdicts from that shorter series are those from the whole history.
    history = [Point(T0 - timedelta(days=d), 70, f"o{d}") for d in range(1, 6)]
    trigger = Point(T0, 131, "now")
    later = Point(T0 + timedelta(minutes=5), 72, "later")
    for series in ([*history, trigger, later], [trigger, later]):
        verdict = evaluate(heart[0], series, heart[0].value, trigger)
        assert verdict.firing and verdict.in_range_now
