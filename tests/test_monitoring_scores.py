"""NEWS2, Morse Fall Scale and LACE against worked examples computed by hand from the
published tables (cited per test)."""

from __future__ import annotations

import pytest

from fhirhub.monitoring.scores import lace, morse, news2
from fhirhub.monitoring.scores.charlson_map import categories, category


def vitals(**changes: object) -> news2.Vitals:
    base: dict[str, object] = {
        "respiratory_rate": 18,
        "spo2": 97,
        "on_oxygen": False,
        "systolic": 125,
        "heart_rate": 75,
        "consciousness": "A",
        "temperature": 37.0,
    }
    base.update(changes)
    return news2.Vitals(**base)  # type: ignore[arg-type]


# RCP NEWS2 (2017) chart 1: each parameter's bands, and chart 2's aggregate bands.
def test_news2_worked_examples() -> None:
    assert news2.score(vitals()) == news2.News2(
        0,
        "low",
        {
            "respiratory-rate": 0,
            "spo2": 0,
            "air-or-oxygen": 0,
            "systolic": 0,
            "heart-rate": 0,
            "consciousness": 0,
            "temperature": 0,
        },
    )
    # RR 22 (2) + SpO2 93 (2) + air (0) + SBP 105 (1) + HR 105 (1) + A (0) + 38.5 C (1) = 7
    high = news2.score(
        vitals(respiratory_rate=22, spo2=93, systolic=105, heart_rate=105, temperature=38.5)
    )
    assert (high.total, high.band) == (7, "high")
    # HR 135 alone scores 3: total 3 but a single red parameter -> low-medium
    single = news2.score(vitals(heart_rate=135))
    assert (single.total, single.band) == (3, "low-medium")
    # RR 24 (2) + SpO2 95 (1) + oxygen (2) + HR 95 (1) + 36.5 C (0) = 6 -> medium
    medium = news2.score(
        vitals(respiratory_rate=24, spo2=95, on_oxygen=True, heart_rate=95, temperature=36.5)
    )
    assert (medium.total, medium.band) == (6, "medium")
    assert news2.score(vitals(consciousness="V")).parts["consciousness"] == 3


@pytest.mark.parametrize(
    ("function", "cases"),
    [
        (news2.respiratory_rate, {8: 3, 9: 1, 11: 1, 12: 0, 20: 0, 21: 2, 24: 2, 25: 3}),
        (news2.spo2_scale1, {91: 3, 92: 2, 93: 2, 94: 1, 95: 1, 96: 0, 100: 0}),
        (news2.systolic, {90: 3, 91: 2, 100: 2, 101: 1, 110: 1, 111: 0, 219: 0, 220: 3}),
        (news2.pulse, {40: 3, 41: 1, 50: 1, 51: 0, 90: 0, 91: 1, 110: 1, 111: 2, 130: 2, 131: 3}),
        (
            news2.temperature,
            {35.0: 3, 35.1: 1, 36.0: 1, 36.1: 0, 38.0: 0, 38.1: 1, 39.0: 1, 39.1: 2},
        ),
    ],
)
def test_news2_band_edges(function: object, cases: dict[float, int]) -> None:
    assert {value: function(value) for value in cases} == cases  # type: ignore[operator]


def test_news2_spo2_scale_2_for_hypercapnic_respiratory_failure() -> None:
    # Chart 1, scale 2: <=83 3, 84-85 2, 86-87 1, 88-92 0 (or >=93 on air), 93-94 / 95-96 /
    # >=97 on oxygen 1 / 2 / 3.
    on_o2 = {83: 3, 84: 2, 85: 2, 86: 1, 87: 1, 88: 0, 92: 0, 93: 1, 94: 1, 95: 2, 96: 2, 97: 3}
    assert {s: news2.spo2_scale2(s, True) for s in on_o2} == on_o2
    assert news2.spo2_scale2(97, False) == 0
    copd = news2.score(vitals(spo2=90, on_oxygen=True, scale2=True))
    assert copd.parts["spo2"] == 0 and copd.total == 2


# Morse 2009, table 3.1: falls 25, secondary diagnosis 15, aid 15/30, IV 20, gait 10/20,
# mental status 15; 0-24 no, 25-44 low, >=45 high.
def test_morse_worked_examples() -> None:
    answers = {
        "history-of-falling": "yes",
        "secondary-diagnosis": "yes",
        "ambulatory-aid": "crutches-cane-walker",
        "iv-or-heparin-lock": "yes",
        "gait": "weak",
        "mental-status": "oriented",
    }
    assert morse.score(answers) == morse.Morse(
        85,
        "high",
        {
            "history-of-falling": 25,
            "secondary-diagnosis": 15,
            "ambulatory-aid": 15,
            "iv-or-heparin-lock": 20,
            "gait": 10,
            "mental-status": 0,
        },
    )
    none = {
        "history-of-falling": "no",
        "secondary-diagnosis": "no",
        "ambulatory-aid": "none",
        "iv-or-heparin-lock": "no",
        "gait": "normal",
        "mental-status": "oriented",
    }
    assert (morse.score(none).total, morse.score(none).risk) == (0, "no")
    low = {**none, "secondary-diagnosis": "yes", "gait": "weak"}  # 15 + 10 = 25
    assert (morse.score(low).total, morse.score(low).risk) == (25, "low")
    edge = {**none, "history-of-falling": "yes", "mental-status": "forgets-limitations"}  # 40
    assert morse.score(edge).risk == "low"
    furniture = {**none, "ambulatory-aid": "furniture", "gait": "impaired"}  # 30 + 20 = 50
    assert (morse.score(furniture).total, morse.score(furniture).risk) == (50, "high")
    with pytest.raises(morse.MissingAnswer):
        morse.score({**none, "gait": "sideways"})


# van Walraven 2010 (CMAJ 182:551), table 2: L <1 d 0, 1-3 d 1-3, 4-6 d 4, 7-13 d 5, >=14 d 7;
# A emergent 3; C Charlson 0-3 as is, >=4 5; E ED visits in 6 months 0-3 as is, >=4 4.
def test_lace_worked_examples() -> None:
    # 5 days (4) + emergent (3) + heart failure 2 + uncomplicated diabetes 1 = Charlson 3 (3)
    # + 2 ED visits (2) = 12: high risk
    example = lace.score(5, True, {"heart-failure", "diabetes-uncomplicated"}, 2)
    assert example == lace.Lace(
        12, True, {"length-of-stay": 4, "acuity": 3, "comorbidity": 3, "emergency-visits": 2}, 3
    )
    elective = lace.score(2, False, set(), 0)
    assert (elective.total, elective.high) == (2, False)
    # Metastatic tumour (6) supersedes any tumour (2): Charlson 6 -> 5 points; 14 days -> 7;
    # 6 ED visits -> 4; emergent 3: the maximum, 19.
    worst = lace.score(14, True, {"tumour", "metastatic-tumour"}, 6)
    assert (worst.charlson, worst.total) == (6, 19)
    assert [lace.length_points(d) for d in (0, 1, 3, 4, 6, 7, 13, 14)] == [0, 1, 3, 4, 4, 5, 5, 7]
    # Nine points is not high risk; ten is.
    assert not lace.score(4, True, {"chronic-pulmonary"}, 0).high  # 4 + 3 + 2 = 9
    assert lace.score(4, True, {"chronic-pulmonary"}, 1).high  # 10


def test_charlson_codes_map_from_icd10_and_snomed() -> None:
    icd = "http://hl7.org/fhir/sid/icd-10"
    assert category(icd, "I50.9") == "heart-failure"
    assert category("http://hl7.org/fhir/sid/icd-10-cm", "E1122") == "diabetes-end-organ"
    assert category(icd, "E11.9") == "diabetes-uncomplicated"
    assert category(icd, "J18.9") is None  # pneumonia is not a Charlson condition
    assert category("http://snomed.info/sct", "13645005") == "chronic-pulmonary"
    conditions = [
        {"code": {"coding": [{"system": icd, "code": "C78.0"}]}},
        {"code": {"coding": [{"system": icd, "code": "C34.1"}]}},
    ]
    assert lace.charlson(categories(conditions)) == 6
