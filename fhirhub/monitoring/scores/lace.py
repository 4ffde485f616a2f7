"""LACE index for death or unplanned readmission within 30 days of discharge. van Walraven C
et al. Derivation and validation of an index to predict early death or unplanned
readmission after discharge from hospital to the community. CMAJ 2010;182:551-557, table 2
(points) and its Charlson weights. Pure. 10 or more is high risk.
"""

from __future__ import annotations

from dataclasses import dataclass

# Charlson conditions with the LACE paper's weights.
CHARLSON_WEIGHTS: dict[str, int] = {
    "myocardial-infarction": 1,
    "cerebrovascular": 1,
    "peripheral-vascular": 1,
    "diabetes-uncomplicated": 1,
    "heart-failure": 2,
    "diabetes-end-organ": 2,
    "chronic-pulmonary": 2,
    "mild-liver": 2,
    "tumour": 2,
    "dementia": 3,
    "connective-tissue": 3,
    "aids": 4,
    "severe-liver": 4,
    "metastatic-tumour": 6,
}
# A condition counted only through its more severe form.
SUPERSEDED_BY = {
    "diabetes-uncomplicated": "diabetes-end-organ",
    "mild-liver": "severe-liver",
    "tumour": "metastatic-tumour",
}


@dataclass(frozen=True)
class Lace:
    total: int
    high: bool
    parts: dict[str, int]
    charlson: int


def length_points(days: int) -> int:
    if days < 1:
        return 0
    if days <= 3:
        return days
    if days <= 6:
        return 4
    return 5 if days <= 13 else 7


def charlson(conditions: set[str]) -> int:
    counted = {
        c for c in conditions if c in CHARLSON_WEIGHTS and SUPERSEDED_BY.get(c) not in conditions
    }
    return sum(CHARLSON_WEIGHTS[c] for c in counted)


def charlson_points(index: int) -> int:
    return index if index <= 3 else 5


def ed_points(visits: int) -> int:
    return min(visits, 4)


def score(length_days: int, acute: bool, conditions: set[str], ed_visits: int) -> Lace:
    index = charlson(conditions)
    parts = {
        "length-of-stay": length_points(length_days),
        "acuity": 3 if acute else 0,
        "comorbidity": charlson_points(index),
        "emergency-visits": ed_points(ed_visits),
    }
    total = sum(parts.values())
    return Lace(total, total >= 10, parts, index)
