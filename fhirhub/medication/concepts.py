"""What a medication resource is made of, by code (pure): the RxNorm codings of a
MedicationRequest/MedicationStatement (its CodeableConcept or a contained Medication) and
the ingredients the knowledge tables give them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhirhub.medication.knowledge import Knowledge

ACTIVE_ORDER = frozenset({"active", "draft", "on-hold"})
CHECKED_INTENTS = frozenset({"order", "plan", "proposal", "original-order", "instance-order"})
ACTIVE_STATEMENT = frozenset({"active", "intended", "on-hold"})


@dataclass(frozen=True)
class Drug:
    reference: str  # "MedicationRequest/1", or "" for the order being checked
    label: str  # the coding's display, for messages only
    codings: tuple[tuple[str, str], ...]
    ingredients: tuple[str, ...] | None  # None: no coding is in the tables
    product_display: str | None


def codings(resource: dict[str, Any]) -> list[dict[str, Any]]:
    concept = resource.get("medicationCodeableConcept")
    if concept is None:
        ref = str((resource.get("medicationReference") or {}).get("reference", ""))
        if ref.startswith("#"):
            for contained in resource.get("contained") or []:
                if contained.get("resourceType") == "Medication" and contained.get("id") == ref[1:]:
                    concept = contained.get("code")
    codes = (concept or {}).get("coding") or []
    return [c for c in codes if isinstance(c, dict)]


def drug_of(resource: dict[str, Any], reference: str, kb: Knowledge) -> Drug:
    found = codings(resource)
    label = next((str(c.get("display")) for c in found if c.get("display")), "")
    label = label or ((resource.get("medicationCodeableConcept") or {}).get("text") or "")
    pairs = tuple((str(c.get("system", "")), str(c.get("code", ""))) for c in found)
    for system, code in pairs:
        ingredients = kb.ingredients_of(system, code)
        if ingredients:
            display = kb.products[code][0]
            return Drug(reference, label or display, pairs, ingredients, display)
    return Drug(reference, label or "medication", pairs, None, None)


def is_checked_order(resource: dict[str, Any]) -> bool:
    return resource.get("status") in ACTIVE_ORDER and resource.get("intent") in CHECKED_INTENTS


def is_current(resource: dict[str, Any]) -> bool:
    if resource.get("resourceType") == "MedicationStatement":
        return resource.get("status") in ACTIVE_STATEMENT
    return resource.get("status") in ACTIVE_ORDER
