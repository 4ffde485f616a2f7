"""The CDS services: discovery entries and the evaluation of one call into cards."""

from __future__ import annotations

from typing import Any

from fhirhub.medication.cds.cards import banner_card, finding_card, unchecked_card
from fhirhub.medication.cds.data import PREFETCH, CdsData, bundle_resources
from fhirhub.medication.concepts import drug_of, is_current
from fhirhub.medication.knowledge import Knowledge
from fhirhub.medication.rules import check_order

SERVICES: dict[str, dict[str, Any]] = {
    "medication-order-sign": {
        "hook": "order-sign",
        "title": "Medication safety at signing",
        "description": "Allergy (with class cross-reactivity), duplicate therapy, drug-drug "
        "interaction and maximum dose checks over the draft MedicationRequests.",
    },
    "medication-order-select": {
        "hook": "order-select",
        "title": "Medication safety when an order is selected",
        "description": "The same checks for the selected draft MedicationRequests.",
    },
    "medication-prescribe": {
        "hook": "medication-prescribe",
        "title": "Medication safety (CDS Hooks 1.0 medication-prescribe)",
        "description": "The order-sign checks over context.medications, for EHRs on the "
        "earlier hook.",
    },
    "medication-patient-view": {
        "hook": "patient-view",
        "title": "Medication allergies and current safety issues",
        "description": "An allergy banner and the safety issues recorded on current orders.",
    },
}


def discovery() -> dict[str, Any]:
    services = []
    for service_id, service in SERVICES.items():
        services.append({**service, "id": service_id, "prefetch": dict(PREFETCH)})
    return {"services": services}


def _drafts(request: dict[str, Any]) -> list[dict[str, Any]]:
    context = request["context"]
    bundle = context.get("draftOrders") or context.get("medications")
    return [r for r in bundle_resources(bundle) if r.get("resourceType") == "MedicationRequest"]


def evaluate(service_id: str, request: dict[str, Any], data: CdsData, kb: Knowledge) -> list[Any]:
    hook = SERVICES[service_id]["hook"]
    if hook == "patient-view":
        return _patient_view(data)
    current = [
        (ref, r)
        for key in ("medications", "statements")
        for ref, r in data.with_refs(key)
        if is_current(r)
    ]
    allergies = data.with_refs("allergies")
    drafts = _drafts(request)
    draft_refs = [f"MedicationRequest/{d.get('id', i)}" for i, d in enumerate(drafts)]
    current = [(ref, r) for ref, r in current if ref not in draft_refs]
    selected = set(request["context"].get("selections") or draft_refs)
    cards: list[dict[str, Any]] = []
    for i, draft in enumerate(drafts):
        if draft_refs[i] not in selected:
            continue
        # Earlier drafts count as current: each pair of drafts is checked once.
        extra = list(zip(draft_refs[:i], drafts[:i], strict=True))
        result = check_order(draft, current + extra, allergies, kb)
        label = drug_of(draft, draft_refs[i], kb).label
        cards += [finding_card(f, draft_refs[i], label) for f in result.findings]
        cards += [unchecked_card(n) for n in result.unchecked]
    return cards


def _patient_view(data: CdsData) -> list[dict[str, Any]]:
    cards = []
    allergies = [
        a
        for a in data.resources("allergies")
        if not {c.get("code") for c in (a.get("verificationStatus") or {}).get("coding", [])}
        & {"entered-in-error", "refuted"}
    ]
    if allergies:
        names = [
            (a.get("code") or {}).get("text")
            or next((c.get("display") for c in (a.get("code") or {}).get("coding", [])), "?")
            for a in allergies
        ]
        cards.append(
            banner_card(
                f"Allergies: {', '.join(map(str, names))}",
                "Documented AllergyIntolerance records.",
                "warning",
            )
        )
    for order in data.resources("medications"):
        for contained in order.get("contained") or []:
            if contained.get("resourceType") == "DetectedIssue":
                cards.append(
                    banner_card(
                        f"Active order with a {contained.get('severity')} safety issue",
                        str(contained.get("detail", "")),
                        "critical" if contained.get("severity") == "high" else "warning",
                    )
                )
    return cards
