"""Refills remaining and adherence as FHIR operations (declared in the operations registry):

- `MedicationRequest/{id}/$refills`: fills allowed, dispensed, refills remaining and the
  day the supply on hand ends;
- `Patient/{id}/$medication-adherence?start&end[&group=ingredient|class]`: proportion of
  days covered (PDC) per medication or class from the patient's dispenses;
- `Patient/$medication-adherence?start&end[&threshold=0.8][&class=statin]`: the patients
  whose PDC in the period is under the threshold (the care team's work list).

Reads go through the search service, so a token's access applies to every resource, and
are bounded: more than MAX_READ dispenses is a too-costly asking for a narrower period.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from fhirhub.fhir.errors import BadRequest, NotFound, TooCostly
from fhirhub.medication.knowledge import Knowledge
from fhirhub.medication.prescriptions.dispense import orders_of
from fhirhub.medication.prescriptions.supply import Fill, allowed_fills, fill_of, pdc, supply_end
from fhirhub.medication.safety.concepts import drug_of
from fhirhub.operations.model import AccessRule, Call, Operation, Parameter, Result

MAX_READ = 20000
LOOKBACK = timedelta(days=365)  # fills before the period may still cover its first days
READ_DISPENSES = AccessRule(types=("MedicationDispense",), actions="s")


def _day(call: Call, name: str) -> date:
    value = call.one(name)
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise BadRequest(f"{name} must be a date (YYYY-MM-DD), got {value!r}") from None


class Adherence:
    def __init__(
        self,
        find: Callable[[str, str, int], list[dict[str, Any]]],
        knowledge: Callable[[], Knowledge],
    ):
        self.find = find
        self.knowledge = knowledge

    def _read(self, resource_type: str, query: str) -> list[dict[str, Any]]:
        found = self.find(resource_type, query, MAX_READ + 1)
        if len(found) > MAX_READ:
            raise TooCostly(f"more than {MAX_READ} {resource_type} match: narrow the period")
        return found

    def refills(self, call: Call) -> Result:
        order_ref = f"MedicationRequest/{call.resource_id}"
        orders = self._read("MedicationRequest", f"_id={call.resource_id}")
        if not orders:
            raise NotFound(f"{order_ref} is not known")
        order = orders[0]
        dispenses = self._read("MedicationDispense", f"prescription={order_ref}")
        fills = [f for d in dispenses if (f := fill_of(d, order))]
        counted = [d for d in dispenses if d.get("status") in ("completed", "in-progress")]
        allowed = allowed_fills(order)
        out: list[dict[str, Any]] = [{"name": "dispensed", "valueInteger": len(counted)}]
        if allowed is not None:
            out += [
                {"name": "fillsAllowed", "valueInteger": allowed},
                {"name": "refillsRemaining", "valueInteger": max(0, allowed - len(counted))},
            ]
        end = supply_end(fills)
        if end is not None:
            out.append({"name": "supplyEnds", "valueDate": end.isoformat()})
        return Result({"resourceType": "Parameters", "parameter": out})

    def _groups(
        self, dispenses: list[dict[str, Any]], by_class: bool
    ) -> dict[tuple[str, str], list[Fill]]:
        """(patient, medication or class) -> fills."""
        kb = self.knowledge()
        orders: dict[str, dict[str, Any] | None] = {}
        groups: dict[tuple[str, str], list[Fill]] = defaultdict(list)
        for dispense in dispenses:
            refs = orders_of(dispense)
            order = None
            if refs:
                if refs[0] not in orders:
                    found = self._read("MedicationRequest", f"_id={refs[0].partition('/')[2]}")
                    orders[refs[0]] = found[0] if found else None
                order = orders[refs[0]]
            fill = fill_of(dispense, order)
            if fill is None:
                continue
            drug = drug_of(dispense, "", kb)
            if drug.ingredients is None and order is not None:
                drug = drug_of(order, "", kb)
            if drug.ingredients is None:
                names = [drug.label or "unknown medication"]
            elif by_class:
                names = sorted({kb.class_of(i) or i for i in drug.ingredients})
            else:
                names = ["/".join(sorted(drug.ingredients))]
            patient = str((dispense.get("subject") or {}).get("reference", ""))
            for name in names:
                groups[(patient, name)].append(fill)
        return groups

    def _dispenses(self, start: date, end: date, patient: str | None) -> list[dict[str, Any]]:
        query = f"whenhandedover=ge{(start - LOOKBACK).isoformat()}&whenhandedover=le{end}"
        if patient:
            query += f"&subject={patient}"
        return self._read("MedicationDispense", query + "&status=completed,in-progress")

    def patient(self, call: Call) -> Result:
        start, end = _day(call, "start"), _day(call, "end")
        if end < start:
            raise BadRequest("end is before start")
        by_class = call.one("group", "ingredient") == "class"
        patient = f"Patient/{call.resource_id}"
        out = []
        for (_, name), fills in sorted(
            self._groups(self._dispenses(start, end, patient), by_class).items()
        ):
            coverage = pdc(fills, start, end)
            if coverage is not None:
                out.append({"name": "adherence", "part": _parts(name, coverage)})
        return Result({"resourceType": "Parameters", "parameter": out})

    def under(self, call: Call) -> Result:
        start, end = _day(call, "start"), _day(call, "end")
        threshold = float(call.one("threshold", 0.8))
        if not 0 < threshold <= 1:
            raise BadRequest("threshold must be above 0 and at most 1")
        wanted = call.one("class")
        groups = self._groups(self._dispenses(start, end, None), by_class=wanted is not None)
        out = []
        for (patient, name), fills in sorted(groups.items()):
            if wanted is not None and name != wanted:
                continue
            coverage = pdc(fills, start, end)
            if coverage is not None and coverage.pdc < threshold:
                parts = [{"name": "patient", "valueReference": {"reference": patient}}]
                out.append({"name": "nonAdherent", "part": parts + _parts(name, coverage)})
        return Result({"resourceType": "Parameters", "parameter": out})


def _parts(name: str, coverage: Any) -> list[dict[str, Any]]:
    return [
        {"name": "medication", "valueString": name},
        {"name": "pdc", "valueDecimal": round(coverage.pdc, 4)},
        {"name": "daysCovered", "valueInteger": coverage.days_covered},
        {"name": "daysInPeriod", "valueInteger": coverage.days_in_period},
        {"name": "fills", "valueInteger": coverage.fills},
        {"name": "adherent", "valueBoolean": coverage.pdc >= 0.8},
    ]


def operations(adherence: Adherence) -> list[Operation]:
    period = (
        Parameter("start", "date", 1, "1", documentation="first day of the period"),
        Parameter("end", "date", 1, "1", documentation="last day of the period"),
    )
    return [
        Operation(
            code="refills",
            id="MedicationRequest-refills",
            title="Refills remaining",
            description="Fills allowed and dispensed, refills remaining and the day the "
            "supply on hand ends, from dispenseRequest and the MedicationDispenses.",
            handler=adherence.refills,
            resource=("MedicationRequest",),
            levels=("instance",),
            parameters=(Parameter("return", "Parameters", 1, "1", use="out"),),
            access=AccessRule(types=("MedicationDispense",), actions="s", instance_read=True),
        ),
        Operation(
            code="medication-adherence",
            id="Patient-medication-adherence",
            title="Medication adherence (proportion of days covered)",
            description="Instance: PDC per medication (or class) of the patient over the "
            "period. Type: the patients under `threshold` (default 0.8), optionally for one "
            "class.",
            handler=lambda call: (
                adherence.patient(call) if call.resource_id else adherence.under(call)
            ),
            resource=("Patient",),
            levels=("type", "instance"),
            parameters=(
                *period,
                Parameter("group", "code", documentation="ingredient (default) or class"),
                Parameter("threshold", "decimal", documentation="type level: PDC below it"),
                Parameter("class", "code", documentation="type level: one therapeutic class"),
                Parameter("return", "Parameters", 1, "1", use="out"),
            ),
            access=READ_DISPENSES,
        ),
    ]
