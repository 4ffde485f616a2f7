"""Referral rules (pure): what a referral Task is and how it may move.

A referral is a ServiceRequest (category "Patient referral", SNOMED CT 3457005) handed to
a specialist by a Task with code `fulfill` whose `focus` is that ServiceRequest, following
the FHIR workflow state machine (R4 task.html#statemachine):

    draft -> requested -> received -> accepted -> in-progress -> completed
                      \\-> accepted   \\-> rejected               \\-> on-hold -> in-progress
    requested|received|accepted|in-progress|on-hold -> cancelled | failed (owner)

The owner (the specialist, or their organisation until someone accepts) moves the Task
forward; the requester may cancel it. Once accepted, who it is for, what it is about, who
asked and who performs it are fixed: changing them would hand the patient's records to
someone else, so such a change is a new referral.
"""

from __future__ import annotations

from typing import Any

TASK_CODES = "http://hl7.org/fhir/CodeSystem/task-code"
FULFILL = "fulfill"
SNOMED = "http://snomed.info/sct"
REFERRAL_CATEGORY = "3457005"  # Patient referral (procedure)

TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"requested", "cancelled", "entered-in-error"}),
    "requested": frozenset({"received", "accepted", "rejected", "cancelled", "entered-in-error"}),
    "received": frozenset({"accepted", "rejected", "cancelled", "entered-in-error"}),
    "accepted": frozenset({"in-progress", "cancelled", "failed", "entered-in-error"}),
    "ready": frozenset({"in-progress", "cancelled", "failed", "entered-in-error"}),
    "in-progress": frozenset({"completed", "on-hold", "cancelled", "failed", "entered-in-error"}),
    "on-hold": frozenset({"in-progress", "cancelled", "failed", "entered-in-error"}),
}
STARTS = frozenset({"draft", "requested"})
# While the Task is in one of these, the specialist reads what the referral shares.
OPEN = frozenset({"accepted", "in-progress"})
ENDED = frozenset({"completed", "cancelled", "failed", "rejected", "entered-in-error"})
NEEDS_REASON = frozenset({"rejected", "cancelled", "failed"})
# What the requester side may do; everything else is the owner's.
REQUESTER_MOVES = frozenset({"requested", "cancelled", "entered-in-error"})
FIXED = ("for", "focus", "requester", "intent", "code")
FIXED_ONCE_ACCEPTED = ("owner",)


def reference(value: Any) -> str | None:
    ref = value.get("reference") if isinstance(value, dict) else None
    return ref.split("/_history")[0] if isinstance(ref, str) else None


def has_coding(concepts: Any, system: str, code: str) -> bool:
    items = concepts if isinstance(concepts, list) else [concepts]
    return any(
        isinstance(c, dict)
        and any(
            isinstance(x, dict) and x.get("system") == system and x.get("code") == code
            for x in c.get("coding") or []
        )
        for c in items
    )


def is_referral_task(task: dict[str, Any] | None) -> bool:
    if not task or task.get("resourceType") != "Task":
        return False
    focus = reference(task.get("focus")) or ""
    return has_coding(task.get("code"), TASK_CODES, FULFILL) and focus.startswith("ServiceRequest/")


def is_referral_request(request: dict[str, Any] | None) -> bool:
    return bool(request) and has_coding((request or {}).get("category"), SNOMED, REFERRAL_CATEGORY)


def transition_problems(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """Why this change of a referral Task is not allowed (empty: it is)."""
    status = str(new.get("status"))
    if old is None:
        if status not in STARTS:
            return [f"a referral Task starts as draft or requested, not {status}"]
        return []
    before = str(old.get("status"))
    problems = []
    if status != before and status not in TRANSITIONS.get(before, frozenset()):
        allowed = ", ".join(sorted(TRANSITIONS.get(before, frozenset()))) or "nothing (ended)"
        problems.append(f"a referral Task cannot go from {before} to {status} (allowed: {allowed})")
    if before in ENDED and old != new:
        problems.append(f"the referral Task has ended ({before}); it cannot change any more")
    if status in NEEDS_REASON and status != before and not new.get("statusReason"):
        problems.append(f"a referral Task going to {status} needs a statusReason")
    fixed = FIXED + (FIXED_ONCE_ACCEPTED if before not in STARTS | {"received"} else ())
    for name in fixed:
        if old.get(name) != new.get(name):
            problems.append(f"Task.{name} of a referral cannot change once it is {before}")
    return problems


def owner_move(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """Is this a status change only the owner makes (receive, accept, reject, start,
    complete...), rather than the requesting side (create, cancel) or a plain edit?"""
    return (
        old is not None
        and new.get("status") != old.get("status")
        and new.get("status") not in REQUESTER_MOVES
    )
