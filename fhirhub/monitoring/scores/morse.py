"""Morse Fall Scale. Morse JM, Morse RM, Tylko SJ. Development of a scale to identify the
fall-prone patient. Can J Aging 1989;8:366-377; items and weights as in Morse JM,
Preventing Patient Falls, 2nd ed. (Springer 2009), table 3.1. Pure.

Risk levels (the commonly used cut-offs of the 2009 book): 0-24 no risk, 25-44 low risk,
45 and above high risk.
"""

from __future__ import annotations

from dataclasses import dataclass

# linkId -> answer code -> points (the shipped Questionnaire uses these codes)
ITEMS: dict[str, dict[str, int]] = {
    "history-of-falling": {"no": 0, "yes": 25},
    "secondary-diagnosis": {"no": 0, "yes": 15},
    "ambulatory-aid": {"none": 0, "crutches-cane-walker": 15, "furniture": 30},
    "iv-or-heparin-lock": {"no": 0, "yes": 20},
    "gait": {"normal": 0, "weak": 10, "impaired": 20},
    "mental-status": {"oriented": 0, "forgets-limitations": 15},
}


@dataclass(frozen=True)
class Morse:
    total: int
    risk: str  # "no", "low", "high"
    parts: dict[str, int]


class MissingAnswer(ValueError):
    pass


def score(answers: dict[str, str]) -> Morse:
    parts = {}
    for item, options in ITEMS.items():
        answer = answers.get(item)
        if answer not in options:
            raise MissingAnswer(f"{item}: answer {answer!r} is not one of {', '.join(options)}")
        parts[item] = options[answer]
    total = sum(parts.values())
    risk = "high" if total >= 45 else "low" if total >= 25 else "no"
    return Morse(total, risk, parts)
