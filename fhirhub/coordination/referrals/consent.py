"""The Consent a referral's acceptance writes, and the share rules it stands for (pure).

What the specialist may read while the referral is open is the Consent's provision:
- `class`: the patient's active CarePlans, Conditions, MedicationRequests and
  AllergyIntolerances (a CarePlan counts while it is active);
- a nested permit for Observations within `dataPeriod` (the recent ones);
- `data` instances: the Patient, the referral ServiceRequest, its Task and the
  ServiceRequest's supportingInfo;
- a nested permit with action `correct` for writing the consult note, new orders and
  messages (DocumentReference, Composition, ServiceRequest, MedicationRequest,
  Communication) in the patient's record.
The policy enforces the Consent only while its Task (a `data` instance) is accepted or in
progress and owned by the actor (referrals/access.py): ending the Task ends the access
even before the Consent itself is marked inactive.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from fhirhub.coordination.referrals.rules import reference
from fhirhub.service.access_grants import patient_id
from fhirhub.service.access_shares import ShareRule

CATEGORY_SYSTEM = "https://fhirhub.example/fhir/CodeSystem/consent-category"
REFERRAL_ACCESS = "referral-access"
RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"
ACTIONS = "http://terminology.hl7.org/CodeSystem/consentaction"
READ_CLASSES = ("CarePlan", "Condition", "MedicationRequest", "AllergyIntolerance")
WRITE_CLASSES = (
    "DocumentReference",
    "Composition",
    "ServiceRequest",
    "MedicationRequest",
    "Communication",  # questions to the referring team
)
RECENT = timedelta(days=365)
# Criteria a class stands for beyond "of this patient".
CLASS_CRITERIA = {"CarePlan": "status=active"}
DATE_PARAMS = {"Observation": "date"}
NAMESPACE = uuid.UUID("8d3c9a0e-2b1f-4b7e-9f51-3c6a1d2e7b40")


def consent_id(task_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"referral-consent:{task_id}"))


def _coding(system: str, code: str) -> dict[str, str]:
    return {"system": system, "code": code}


def referral_consent(
    task: dict[str, Any],
    request: dict[str, Any],
    now: datetime,
    status: str = "active",
    started: str | None = None,
) -> dict[str, Any]:
    """The Consent for an accepted referral Task (status inactive once the Task ended;
    `started`: when the access began, kept from the active version)."""
    task_ref = f"Task/{task['id']}"
    patient = reference(task.get("for"))
    instances = [patient, task_ref, f"ServiceRequest/{request['id']}"]
    instances += [reference(s) for s in request.get("supportingInfo") or []]
    stamp = now.isoformat(timespec="seconds")
    period: dict[str, str] = {"start": started or stamp}
    provision: dict[str, Any] = {
        "type": "permit",
        "period": period,
        "actor": [
            {
                "role": {
                    "coding": [
                        _coding(
                            "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "PRCP"
                        )
                    ]
                },
                "reference": {"reference": reference(task.get("owner"))},
            }
        ],
        "action": [{"coding": [_coding(ACTIONS, "access")]}],
        "purpose": [_coding("http://terminology.hl7.org/CodeSystem/v3-ActReason", "TREAT")],
        "class": [_coding(RESOURCE_TYPES, name) for name in READ_CLASSES],
        "data": [
            {"meaning": "instance", "reference": {"reference": ref}}
            for ref in dict.fromkeys(instances)
            if ref
        ],
        "provision": [
            {
                "type": "permit",
                "class": [_coding(RESOURCE_TYPES, "Observation")],
                "dataPeriod": {"start": (now - RECENT).date().isoformat()},
            },
            {
                "type": "permit",
                "action": [{"coding": [_coding(ACTIONS, "correct")]}],
                "class": [_coding(RESOURCE_TYPES, name) for name in WRITE_CLASSES],
            },
        ],
    }
    consent: dict[str, Any] = {
        "resourceType": "Consent",
        "id": consent_id(str(task["id"])),
        "status": status,
        "scope": {
            "coding": [
                _coding("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy")
            ]
        },
        "category": [
            {"coding": [_coding("http://loinc.org", "59284-0")]},
            {"coding": [_coding(CATEGORY_SYSTEM, REFERRAL_ACCESS)]},
        ],
        "patient": {"reference": patient},
        "dateTime": stamp,
        "policyRule": {
            "coding": [_coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", "OPTIN")]
        },
        "provision": provision,
    }
    if task.get("requester"):
        consent["performer"] = [task["requester"]]
    if status != "active":
        period["end"] = stamp
    return consent


def consent_task(consent: dict[str, Any]) -> str | None:
    """The referral Task a referral-access Consent belongs to (its Task instance)."""
    for item in (consent.get("provision") or {}).get("data") or []:
        ref = reference(item.get("reference"))
        if ref and ref.startswith("Task/"):
            return ref
    return None


def shares(consent: dict[str, Any]) -> list[ShareRule]:
    """The share rules of a permit provision (and its nested permits)."""
    patient = patient_id(reference(consent.get("patient")))
    top = consent.get("provision") or {}
    if patient is None or top.get("type") != "permit":
        return []
    rules = _provision_rules(top, patient)
    for nested in top.get("provision") or []:
        if isinstance(nested, dict) and nested.get("type") == "permit":
            rules += _provision_rules(nested, patient)
    return rules


def _provision_rules(provision: dict[str, Any], patient: str) -> list[ShareRule]:
    writes = any(
        x.get("system") == ACTIONS and x.get("code") == "correct"
        for concept in provision.get("action") or []
        for x in concept.get("coding") or []
    )
    actions = frozenset("c" if writes else "rs")
    since = (provision.get("dataPeriod") or {}).get("start")
    rules = []
    for item in provision.get("class") or []:
        name = item.get("code")
        if item.get("system") != RESOURCE_TYPES or not isinstance(name, str):
            continue
        criteria = [] if writes else [CLASS_CRITERIA.get(name, "")]
        if since and name in DATE_PARAMS:
            criteria.append(f"{DATE_PARAMS[name]}=ge{since}")
        rules.append(ShareRule(name, actions, patient, "&".join(c for c in criteria if c)))
    by_type: dict[str, list[str]] = {}
    for item in provision.get("data") or []:
        ref = reference(item.get("reference")) or ""
        kind, _, rid = ref.partition("/")
        if rid:
            by_type.setdefault(kind, []).append(rid)
    rules += [
        ShareRule(kind, frozenset("rs"), patient, "_id=" + ",".join(ids))
        for kind, ids in by_type.items()
    ]
    return rules


def empty_provision(consent: dict[str, Any]) -> str | None:
    """Why a Consent's provision grants or denies nothing definable (None: it is fine)."""
    provision = consent.get("provision")
    if provision is None:
        return None  # a Consent may rest on its policy alone
    if not isinstance(provision, dict):
        return "Consent.provision must be an object"
    keys = ("actor", "action", "class", "data", "code", "securityLabel", "purpose", "provision")
    if not any(provision.get(k) for k in keys) and not provision.get("dataPeriod"):
        return (
            "Consent.provision is empty: name who (actor), what (class, data, code) or "
            "which actions it permits or denies"
        )
    if _is_referral_access(consent) and not (provision.get("actor") and consent_task(consent)):
        return "a referral-access Consent needs a provision.actor and its Task in provision.data"
    return None


def _is_referral_access(consent: dict[str, Any]) -> bool:
    return any(
        x.get("system") == CATEGORY_SYSTEM and x.get("code") == REFERRAL_ACCESS
        for concept in consent.get("category") or []
        for x in concept.get("coding") or []
    )
