"""The medication checks (pure): allergy with class cross-reactivity, duplicate therapy,
drug-drug interaction and dose above the maximum, over one order and the patient's current
list. Codes are v3 ActCode (terminology.hl7.org/CodeSystem/v3-ActCode) detected-issue codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fhirhub.medication.concepts import Drug, drug_of
from fhirhub.medication.dose import daily_amount
from fhirhub.medication.knowledge import RXNORM, Interaction, Knowledge

RANK = {"high": 3, "moderate": 2, "low": 1}
IGNORED_VERIFICATION = frozenset({"entered-in-error", "refuted"})
INACTIVE_CLINICAL = frozenset({"inactive", "resolved"})


@dataclass(frozen=True)
class Finding:
    code: str  # ALGY, DUPTHPY, DRG, DOSEH
    display: str
    severity: str
    detail: str
    implicated: tuple[str, ...] = ()  # references besides the order itself


@dataclass
class Result:
    findings: list[Finding] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)  # "could not check" notes

    @property
    def highest(self) -> str | None:
        return max((f.severity for f in self.findings), key=RANK.__getitem__, default=None)


def _codes(resource: dict[str, Any], element: str) -> list[tuple[str, str]]:
    return [
        (str(c.get("system", "")), str(c.get("code", "")))
        for c in ((resource.get(element) or {}).get("coding") or [])
        if isinstance(c, dict)
    ]


def _status(resource: dict[str, Any], element: str) -> set[str]:
    return {code for _, code in _codes(resource, element)}


def check_allergies(
    order: Drug, allergies: list[tuple[str, dict[str, Any]]], kb: Knowledge, result: Result
) -> None:
    assert order.ingredients is not None
    order_classes = {c for i in order.ingredients for c in kb.allergy_classes_of(i)}
    for reference, allergy in allergies:
        if _status(allergy, "verificationStatus") & IGNORED_VERIFICATION:
            continue
        if _status(allergy, "clinicalStatus") & INACTIVE_CLINICAL:
            continue
        categories = set(allergy.get("category") or [])
        ingredients: set[str] = set()
        classes: set[str] = set()
        known = False
        for system, code in _codes(allergy, "code"):
            allergen = kb.allergens.get((system, code))
            if allergen is not None:
                known = True
                ingredients.update(allergen.ingredients)
                if allergen.allergy_class:
                    classes.add(allergen.allergy_class)
            elif system == RXNORM and kb.ingredients_of(system, code):
                known = True
                ingredients.update(kb.ingredients_of(system, code) or ())
        for ingredient in ingredients:
            classes.update(kb.allergy_classes_of(ingredient))
        if not known:
            if not categories or "medication" in categories:
                label = (allergy.get("code") or {}).get("text") or reference
                result.unchecked.append(f"{reference} ({label}): allergen code not in the tables")
            continue
        severity = "low" if allergy.get("criticality") == "low" else "high"
        same = set(order.ingredients) & ingredients
        shared = order_classes & classes
        if same or shared:
            what = ", ".join(sorted(same)) if same else kb.allergy_classes[sorted(shared)[0]].name
            kind = "intolerance" if allergy.get("type") == "intolerance" else "allergy"
            if kind == "intolerance" and severity == "high":
                severity = "moderate"
            result.findings.append(
                Finding(
                    "ALGY",
                    "Allergy Alert",
                    severity,
                    f"{order.label} contains {what}: the patient has a documented {kind} "
                    f"({reference}).",
                    (reference,),
                )
            )
            continue
        for allergy_class in sorted(classes):
            for cross_class, cross_severity, note in kb.allergy_classes[allergy_class].cross:
                if cross_class in order_classes:
                    result.findings.append(
                        Finding(
                            "ALGY",
                            "Allergy Alert",
                            cross_severity,
                            f"{order.label}: cross-reactivity of "
                            f"{kb.allergy_classes[cross_class].name} with the patient's "
                            f"{kb.allergy_classes[allergy_class].name} allergy "
                            f"({reference}). {note}",
                            (reference,),
                        )
                    )


def check_duplicates(order: Drug, others: list[Drug], kb: Knowledge, result: Result) -> None:
    assert order.ingredients is not None
    mine = set(order.ingredients)
    my_classes = {kb.class_of(i) for i in mine} - {""}
    for other in others:
        if other.ingredients is None:
            continue
        same = mine & set(other.ingredients)
        if same:
            result.findings.append(
                Finding(
                    "DUPTHPY",
                    "Duplicate Therapy Alert",
                    "moderate",
                    f"{order.label} duplicates {', '.join(sorted(same))} already in "
                    f"{other.label} ({other.reference}).",
                    (other.reference,),
                )
            )
            continue
        classes = my_classes & {kb.class_of(i) for i in other.ingredients}
        if classes:
            result.findings.append(
                Finding(
                    "DUPTHPY",
                    "Duplicate Therapy Alert",
                    "low",
                    f"{order.label} is in the same class ({', '.join(sorted(classes))}) as "
                    f"{other.label} ({other.reference}).",
                    (other.reference,),
                )
            )


def _terms(ingredient: str, kb: Knowledge) -> set[str]:
    drug_class = kb.class_of(ingredient)
    return {ingredient, f"class:{drug_class}"} if drug_class else {ingredient}


def interactions_between(a: Drug, b: Drug, kb: Knowledge) -> list[Interaction]:
    found: list[Interaction] = []
    for x in a.ingredients or ():
        for y in b.ingredients or ():
            tx, ty = _terms(x, kb), _terms(y, kb)
            for pair in kb.interactions:
                if ((pair.a in tx and pair.b in ty) or (pair.a in ty and pair.b in tx)) and (
                    pair not in found
                ):
                    found.append(pair)
    return found


def check_interactions(order: Drug, others: list[Drug], kb: Knowledge, result: Result) -> None:
    for other in others:
        if other.ingredients is None:
            continue
        for pair in interactions_between(order, other, kb):
            listed = " (ONC high-priority interaction)" if pair.listed else ""
            result.findings.append(
                Finding(
                    "DRG",
                    "Drug Interaction Alert",
                    pair.severity,
                    f"{order.label} with {other.label} ({other.reference}){listed}: {pair.text}",
                    (other.reference,),
                )
            )


def check_dose(order: Drug, resource: dict[str, Any], kb: Knowledge, result: Result) -> None:
    assert order.ingredients is not None
    limits = [kb.doses[i] for i in order.ingredients if i in kb.doses]
    if not limits:
        return
    if len(order.ingredients) > 1:
        result.unchecked.append(f"{order.label}: dose of a combination product not checked")
        return
    amount, why = daily_amount(resource.get("dosageInstruction") or [], order.product_display)
    if amount is None:
        result.unchecked.append(f"{order.label}: dose not checked ({why})")
        return
    limit = limits[0]
    allowed = limit.max_mg * (1 / 7 if limit.period == "wk" else 1)
    if amount.mg_per_day > allowed * 1.0001:
        per = "week" if limit.period == "wk" else "day"
        given = amount.mg_per_day * (7 if limit.period == "wk" else 1)
        result.findings.append(
            Finding(
                "DOSEH",
                "High Dose Alert",
                limit.severity,
                f"{order.label}: {given:g} mg per {per} ({amount.text}) is above the maximum "
                f"{limit.max_mg:g} mg per {per} for {limit.ingredient}. {limit.note}",
            )
        )


def check_order(
    resource: dict[str, Any],
    current: list[tuple[str, dict[str, Any]]],
    allergies: list[tuple[str, dict[str, Any]]],
    kb: Knowledge,
) -> Result:
    """All checks of one order against the patient's current medications and allergies."""
    result = Result()
    order = drug_of(resource, "", kb)
    if order.ingredients is None:
        shown = ", ".join(f"{s}|{c}" for s, c in order.codings) or "no coding"
        result.unchecked.append(
            f"{order.label} ({shown}): not in the medication tables; allergy, duplicate, "
            "interaction and dose checks could not be done"
        )
        return result
    others = [drug_of(r, ref, kb) for ref, r in current]
    for other in others:
        if other.ingredients is None:
            result.unchecked.append(f"{other.reference} ({other.label}): not in the tables")
    check_allergies(order, allergies, kb, result)
    check_duplicates(order, others, kb, result)
    check_interactions(order, others, kb, result)
    check_dose(order, resource, kb, result)
    return result
