"""NEWS2, Royal College of Physicians, National Early Warning Score (NEWS) 2 (2017),
chart 1 (the scoring system) and chart 2 (thresholds and triggers). Pure.

Bands: 0-4 low, any single parameter scoring 3 with a total under 5 low-medium (an urgent
ward-based response), 5-6 medium, 7 or more high.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Vitals:
    respiratory_rate: float
    spo2: float
    on_oxygen: bool
    systolic: float
    heart_rate: float
    consciousness: str  # "A" alert, or one of C, V, P, U (new confusion, voice, pain, none)
    temperature: float  # degrees Celsius
    scale2: bool = False  # SpO2 scale 2: hypercapnic respiratory failure, target 88-92 %


@dataclass(frozen=True)
class News2:
    total: int
    band: str
    parts: dict[str, int]


def respiratory_rate(rr: float) -> int:
    return 3 if rr <= 8 else 1 if rr <= 11 else 0 if rr <= 20 else 2 if rr <= 24 else 3


def spo2_scale1(spo2: float) -> int:
    return 3 if spo2 <= 91 else 2 if spo2 <= 93 else 1 if spo2 <= 95 else 0


def spo2_scale2(spo2: float, on_oxygen: bool) -> int:
    if spo2 <= 83:
        return 3
    if spo2 <= 85:
        return 2
    if spo2 <= 87:
        return 1
    if spo2 <= 92 or not on_oxygen:
        return 0  # 88-92, or 93 and above on air
    return 1 if spo2 <= 94 else 2 if spo2 <= 96 else 3  # 93-94, 95-96, >=97 on oxygen


def systolic(sbp: float) -> int:
    if sbp <= 90:
        return 3
    if sbp <= 100:
        return 2
    if sbp <= 110:
        return 1
    return 0 if sbp <= 219 else 3


def pulse(hr: float) -> int:
    if hr <= 40:
        return 3
    if hr <= 50:
        return 1
    if hr <= 90:
        return 0
    return 1 if hr <= 110 else 2 if hr <= 130 else 3


def temperature(celsius: float) -> int:
    if celsius <= 35.0:
        return 3
    if celsius <= 36.0:
        return 1
    if celsius <= 38.0:
        return 0
    return 1 if celsius <= 39.0 else 2


def score(v: Vitals) -> News2:
    parts = {
        "respiratory-rate": respiratory_rate(v.respiratory_rate),
        "spo2": spo2_scale2(v.spo2, v.on_oxygen) if v.scale2 else spo2_scale1(v.spo2),
        "air-or-oxygen": 2 if v.on_oxygen else 0,
        "systolic": systolic(v.systolic),
        "heart-rate": pulse(v.heart_rate),
        "consciousness": 0 if v.consciousness.upper() == "A" else 3,
        "temperature": temperature(v.temperature),
    }
    total = sum(parts.values())
    if total >= 7:
        band = "high"
    elif total >= 5:
        band = "medium"
    elif 3 in parts.values():
        band = "low-medium"
    else:
        band = "low"
    return News2(total, band, parts)
