"""Referral Tasks and Consents open a patient's records to someone: access-granting types
(fhirhub/service/access_grants.py), so writing one is authorised against the patient it
opens. Creating a referral, or changing who or what it is for, needs a token that manages
the patient's care; the owner moving the Task through the workflow widens nothing
(`keep_open`)."""

from __future__ import annotations

from typing import Any

import orjson

from fhirhub.coordination.referrals.rules import ENDED, is_referral_task, reference
from fhirhub.service.access_grants import AccessGrant, GrantRegistry, patient_id

Resource = dict[str, Any]


def task_subjects(task: Resource) -> list[str]:
    found = patient_id(reference(task.get("for"))) if is_referral_task(task) else None
    return [found] if found else []


def task_grantees(task: Resource) -> frozenset[str]:
    if not is_referral_task(task) or task.get("status") in ENDED:
        return frozenset()
    return frozenset({f"owner={reference(task.get('owner'))}|focus={reference(task.get('focus'))}"})


def consent_subjects(consent: Resource) -> list[str]:
    found = patient_id(reference(consent.get("patient")))
    return [found] if found else []


def consent_grantees(consent: Resource) -> frozenset[str]:
    """The provision of an active Consent: any change to it may widen access."""
    if consent.get("status") != "active":
        return frozenset()
    return frozenset({orjson.dumps(consent.get("provision"), option=orjson.OPT_SORT_KEYS).decode()})


def register(grants: GrantRegistry) -> None:
    grants.register(AccessGrant("Task", task_subjects, task_grantees, keep_open=True))
    grants.register(AccessGrant("Consent", consent_subjects, consent_grantees))
