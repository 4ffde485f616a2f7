"""Pure referral rules: the Task state machine, the Consent a referral writes and the share
rules it stands for, empty provisions (no database)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fhirhub.coordination.referrals.consent import (
    consent_task,
    empty_provision,
    referral_consent,
    shares,
)
from fhirhub.coordination.referrals.grants import task_grantees
from fhirhub.coordination.referrals.rules import is_referral_task, owner_move, transition_problems
from tests.coordination_support import referral_request, referral_task

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def task(status: str, **extra: object) -> dict[str, object]:
    return {**referral_task("sr1"), "id": "t1", "status": status, **extra}


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("requested", "received"),
        ("requested", "accepted"),
        ("received", "accepted"),
        ("accepted", "in-progress"),
        ("in-progress", "completed"),
        ("in-progress", "on-hold"),
        ("on-hold", "in-progress"),
    ],
)
def test_workflow_steps_are_allowed(before: str, after: str) -> None:
    assert transition_problems(task(before), task(after)) == []


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("requested", "completed"),
        ("requested", "in-progress"),
        ("received", "in-progress"),
        ("accepted", "completed"),
        ("accepted", "requested"),
        ("completed", "in-progress"),
        ("rejected", "accepted"),
        ("cancelled", "requested"),
    ],
)
def test_out_of_order_steps_are_refused(before: str, after: str) -> None:
    assert any("cannot go from" in p for p in transition_problems(task(before), task(after)))


def test_reasons_fixed_fields_and_starts() -> None:
    assert transition_problems(None, task("accepted")) == [
        "a referral Task starts as draft or requested, not accepted"
    ]
    assert transition_problems(task("requested"), task("rejected")) == [
        "a referral Task going to rejected needs a statusReason"
    ]
    reason = {"text": "not our specialty"}
    assert transition_problems(task("requested"), task("rejected", statusReason=reason)) == []
    moved = task("in-progress", owner={"reference": "Practitioner/other"})
    assert transition_problems(task("accepted"), moved) == [
        "Task.owner of a referral cannot change once it is accepted"
    ]
    # before acceptance the referral may still be handed to another specialist
    assert transition_problems(task("requested"), {**moved, "status": "received"}) == []
    other_patient = task("accepted", **{"for": {"reference": "Patient/q"}})
    assert (
        "Task.for of a referral cannot change"
        in transition_problems(task("requested"), other_patient)[0]
    )
    ended = task("completed")
    assert transition_problems(ended, {**ended, "note": [{"text": "x"}]}) == [
        "the referral Task has ended (completed); it cannot change any more"
    ]


def test_who_moves_and_what_a_referral_is() -> None:
    assert owner_move(task("requested"), task("accepted"))
    assert not owner_move(task("accepted"), task("cancelled"))
    assert not owner_move(task("accepted"), task("accepted", note=[{"text": "call me"}]))
    assert is_referral_task(task("requested"))
    assert not is_referral_task({**task("requested"), "focus": {"reference": "Patient/p"}})
    assert not is_referral_task({**task("requested"), "code": {"text": "fulfill"}})
    assert task_grantees(task("completed")) == frozenset()
    assert task_grantees(task("accepted")) == task_grantees(task("in-progress"))


def test_the_consent_shares_exactly_the_listed_records() -> None:
    request = {**referral_request(), "id": "sr1"}
    consent = referral_consent(task("accepted"), request, NOW)
    assert consent_task(consent) == "Task/t1"
    assert empty_provision(consent) is None
    rules = {(r.resource_type, "".join(sorted(r.actions)), r.criteria) for r in shares(consent)}
    assert rules == {
        ("CarePlan", "rs", "status=active"),
        ("Condition", "rs", ""),
        ("MedicationRequest", "rs", ""),
        ("AllergyIntolerance", "rs", ""),
        ("Observation", "rs", "date=ge2025-03-01"),
        ("Patient", "rs", "_id=p"),
        ("Task", "rs", "_id=t1"),
        ("ServiceRequest", "rs", "_id=sr1"),
        ("DocumentReference", "rs", "_id=doc-echo"),
        ("DocumentReference", "c", ""),
        ("Composition", "c", ""),
        ("ServiceRequest", "c", ""),
        ("MedicationRequest", "c", ""),
        ("Communication", "c", ""),
    }
    assert {r.patient for r in shares(consent)} == {"p"}
    ended = referral_consent(task("completed"), request, NOW, "inactive", "2026-02-01")
    assert ended["provision"]["period"] == {
        "start": "2026-02-01",
        "end": "2026-03-01T09:30:00+00:00",
    }
    assert shares({**consent, "provision": {**consent["provision"], "type": "deny"}}) == []


def test_empty_provisions() -> None:
    consent = referral_consent(task("accepted"), {**referral_request(), "id": "sr1"}, NOW)
    assert empty_provision({**consent, "provision": {"type": "permit"}}) is not None
    assert empty_provision({**consent, "provision": {}}) is not None
    no_task = {**consent["provision"], "data": []}
    assert "needs a provision.actor and its Task" in str(
        empty_provision({**consent, "provision": no_task})
    )
    assert empty_provision({k: v for k, v in consent.items() if k != "provision"}) is None
