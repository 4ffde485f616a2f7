"""Evaluating a patient's rules for one measure, and the flagged-reading record."""

from __future__ import annotations

import uuid
from typing import Any

from fhirhub.monitoring.alerts.book import AlertBook
from fhirhub.monitoring.context import Context
from fhirhub.monitoring.enrolment.plans import Enrolment
from fhirhub.monitoring.readings.observations import Reading
from fhirhub.monitoring.readings.units import BY_NAME
from fhirhub.monitoring.rules.table import Rule
from fhirhub.monitoring.rules.verdicts import Point, evaluate, limit_of
from fhirhub.storage.store import fhir_instant

NAMESPACE = uuid.UUID("6d2f0a41-93b7-4e55-8a0e-1c7b9f3e2d54")
ISSUE_SYSTEM = "https://fhirhub.example/fhir/CodeSystem/monitoring-reading-issue"


def rules_for(context: Context, enrolment: Enrolment, measure: str) -> list[Rule]:
    return [
        r
        for r in context.knowledge.for_organization(enrolment.organization)
        if r.measure == measure
    ]


def evaluate_measure(
    book: AlertBook,
    enrolment: Enrolment,
    reading: Reading,
    points: list[Point],
    cause: str,
    device: str = "",
) -> list[str]:
    """The reading's rules over the measure's series (`points`, read by the caller)."""
    measure, around = reading.measure, reading.effective
    if around is None or reading.value is None:
        return []
    trigger = Point(around, reading.value, reading.observation, device)
    rules = rules_for(book.context, enrolment, measure)
    if not rules:
        return []
    book.prefetch(enrolment.patient, [r.id for r in rules])
    notes = []
    for rule in rules:
        verdict = evaluate(rule, points, limit_of(rule, enrolment.bound(measure)), trigger)
        note = book.apply(enrolment.patient, rule, verdict, BY_NAME[measure].unit, cause)
        if note:
            notes.append(note)
    return notes


def fires(book: AlertBook, enrolment: Enrolment, reading: Reading, points: list[Point]) -> bool:
    """Would any of the reading's rules fire (the same verdicts evaluate_measure acts on)?"""
    if reading.effective is None or reading.value is None:
        return False
    trigger = Point(reading.effective, reading.value, reading.observation)
    return any(
        evaluate(rule, points, limit_of(rule, enrolment.bound(reading.measure)), trigger).firing
        for rule in rules_for(book.context, enrolment, reading.measure)
    )


def flag_reading(context: Context, patient: str, reading: Reading, version: str) -> str:
    """A reading stored but not compared (unknown unit, impossible value, no time): a
    DetectedIssue on it, so the gap is visible, and never an alert."""
    issue_id = str(uuid.uuid5(NAMESPACE, f"{version}:{reading.measure}"))
    issue: dict[str, Any] = {
        "resourceType": "DetectedIssue",
        "id": issue_id,
        "status": "final",
        "code": {
            "coding": [{"system": ISSUE_SYSTEM, "code": "not-compared"}],
            "text": "Monitoring reading not compared",
        },
        "severity": "low",
        "patient": {"reference": patient},
        "identifiedDateTime": fhir_instant(context.clock()),
        "implicated": [{"reference": reading.observation}],
        "detail": f"{reading.measure}: {reading.problem}; stored, not compared against rules",
    }
    context.resources.update("DetectedIssue", issue_id, issue)
    return f"{reading.measure}: flagged ({reading.problem})"
