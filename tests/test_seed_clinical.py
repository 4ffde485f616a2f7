"""Clinical coherence of the generated records: diagnoses show up in labs, vitals and
prescriptions, allergies are respected, and a few R4 invariants hold."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from itertools import pairwise
from statistics import mean
from typing import Any

import orjson

from fhirhub.config import PROJECT_ROOT
from fhirhub.seed import generate_bundles

Json = dict[str, Any]
ANCHOR = date(2025, 3, 14)
DIABETES, HYPERTENSION = "44054006", "59621000"
PENICILLIN = "7984"
PENICILLINS = {"308182", "834061", "562251"}  # amoxicillin, penicillin V, amoxicillin/clavulanate
DIABETES_MEDS = {"860975", "1373463", "897122"}
BP_MEDS = {"314076", "197361", "310798", "979485"}


@dataclass
class Record:
    patient: Json
    by_type: dict[str, list[Json]] = field(default_factory=lambda: defaultdict(list))

    def conditions(self) -> set[str]:
        return {c["code"]["coding"][0]["code"] for c in self.by_type["Condition"]}

    def observations(self, loinc: str) -> list[Json]:
        return [o for o in self.by_type["Observation"] if o["code"]["coding"][0]["code"] == loinc]

    def medications(self) -> set[str]:
        return {
            m["medicationCodeableConcept"]["coding"][0]["code"]
            for m in self.by_type["MedicationRequest"]
        }


def _owner(resource: Json) -> str | None:
    for key in ("subject", "patient"):
        if key in resource:
            return str(resource[key]["reference"])
    for participant in resource.get("participant", []):
        reference = participant.get("actor", {}).get("reference", "")
        if reference.startswith("urn:uuid:"):
            return str(reference)
    return None


@cache
def records(patients: int = 200, seed: int = 11) -> tuple[Record, ...]:
    out: dict[str, Record] = {}
    for bundle in list(generate_bundles(patients, seed=seed, anchor=ANCHOR))[1:]:
        for entry in bundle["entry"]:
            resource = entry["resource"]
            if resource["resourceType"] == "Patient":
                out[entry["fullUrl"]] = Record(resource)
            else:
                owner = _owner(resource)
                assert owner in out, resource["resourceType"]
                out[owner].by_type[resource["resourceType"]].append(resource)
    return tuple(out.values())


def _age(patient: Json) -> int:
    born = date.fromisoformat(patient["birthDate"])
    return ANCHOR.year - born.year - ((ANCHOR.month, ANCHOR.day) < (born.month, born.day))


def test_diabetics_have_high_hba1c_and_diabetes_medication() -> None:
    diabetics = [r for r in records() if DIABETES in r.conditions()]
    assert len(diabetics) >= 5
    for record in diabetics:
        hba1c = record.observations("4548-4")
        assert hba1c, "every diabetic has an HbA1c at their check-up"
        assert all(o["valueQuantity"]["value"] >= 6.4 for o in hba1c)
        assert all(o["interpretation"][0]["coding"][0]["code"] == "H" for o in hba1c)
        assert record.medications() & DIABETES_MEDS
    others = [
        o
        for r in records()
        if not r.conditions() & {DIABETES, "15777000"}
        for o in r.observations("4548-4")
    ]
    assert all(o["valueQuantity"]["value"] < 5.9 for o in others)


def test_hypertensives_have_higher_blood_pressure_and_bp_medication() -> None:
    def systolic(record: Record) -> list[float]:
        return [
            c["valueQuantity"]["value"]
            for o in record.observations("85354-9")
            for c in o["component"]
            if c["code"]["coding"][0]["code"] == "8480-6"
        ]

    adults = [r for r in records() if _age(r.patient) >= 25]
    hypertensive = [v for r in adults if HYPERTENSION in r.conditions() for v in systolic(r)]
    normotensive = [v for r in adults if HYPERTENSION not in r.conditions() for v in systolic(r)]
    assert hypertensive and normotensive
    assert mean(hypertensive) > mean(normotensive) + 20
    for record in adults:
        if HYPERTENSION in record.conditions():
            assert record.medications() & BP_MEDS


def test_prescriptions_respect_allergies_and_point_at_their_condition() -> None:
    medications = orjson.loads(
        (PROJECT_ROOT / "seed_data" / "medications_rxnorm.json").read_bytes()
    )
    allergens = {m["code"]: set(m.get("allergens", [])) for m in medications["medications"]}
    conditions = orjson.loads((PROJECT_ROOT / "seed_data" / "conditions_snomed.json").read_bytes())
    indicated = {
        c["code"]: {o[0] for o in c.get("medications", {}).get("options", [])}
        for c in conditions["conditions"]
    }
    checked = 0
    for record in records():
        allergies = {a["code"]["coding"][0]["code"] for a in record.by_type["AllergyIntolerance"]}
        if PENICILLIN in allergies:
            assert not record.medications() & PENICILLINS
        by_text = {
            c["code"]["text"]: c["code"]["coding"][0]["code"] for c in record.by_type["Condition"]
        }
        for request in record.by_type["MedicationRequest"]:
            code = request["medicationCodeableConcept"]["coding"][0]["code"]
            assert not allergens[code] & allergies
            reasons = {by_text[r["display"]] for r in request["reasonReference"]}
            assert any(code in indicated[reason] for reason in reasons)
            checked += 1
    assert checked > 100


def test_condition_status_matches_abatement() -> None:
    resolved = 0
    for record in records():
        for condition in record.by_type["Condition"]:
            status = condition["clinicalStatus"]["coding"][0]["code"]
            if "abatementDateTime" in condition:
                resolved += 1
                assert status == "resolved"  # con-4
                assert (
                    condition["onsetDateTime"] < condition["abatementDateTime"] < ANCHOR.isoformat()
                )
            else:
                assert status == "active"
            category = condition["category"][0]["coding"][0]["code"]
            assert ("encounter" in condition) == (category == "encounter-diagnosis")
    assert resolved > 0


def test_body_measurements_agree() -> None:
    checked = 0
    for record in records(60):
        by_encounter: dict[str, dict[str, float]] = defaultdict(dict)
        for obs in record.by_type["Observation"]:
            if "valueQuantity" in obs:
                by_encounter[obs["encounter"]["reference"]][obs["code"]["coding"][0]["code"]] = obs[
                    "valueQuantity"
                ]["value"]
        for values in by_encounter.values():
            if {"8302-2", "29463-7", "39156-5"} <= set(values):
                height_m = values["8302-2"] / 100
                assert abs(values["29463-7"] / height_m**2 - values["39156-5"]) < 0.1
                assert 80 < values["8302-2"] < 210
                checked += 1
    assert checked > 20


def test_allergies_with_anaphylaxis_are_high_criticality() -> None:
    seen = 0
    for record in records():
        for allergy in record.by_type["AllergyIntolerance"]:
            manifestations = {
                m["coding"][0]["code"] for r in allergy["reaction"] for m in r["manifestation"]
            }
            if "39579001" in manifestations:
                seen += 1
                assert allergy["criticality"] == "high"
                assert allergy["reaction"][0]["severity"] == "severe"
    assert seen > 0


def test_care_teams_and_plans_are_coherent() -> None:
    for record in records(80):
        (team,) = record.by_type["CareTeam"]
        assert team["status"] == "active"
        assert 2 <= len(team["participant"]) <= 4
        for participant in team["participant"]:
            assert participant["role"]
            if "onBehalfOf" in participant:  # ctm-1
                assert participant["member"]["reference"].startswith("Practitioner?")
        gp = record.patient["generalPractitioner"][0]["reference"]
        assert team["participant"][0]["member"]["reference"] == gp
        chronic = {c["code"]["text"] for c in record.by_type["Condition"] if "encounter" not in c}
        for plan in record.by_type["CarePlan"]:
            assert plan["status"] == "active" and plan["intent"] == "plan"
            assert plan["category"][0]["coding"][0]["code"] == "assess-plan"
            assert {a["display"] for a in plan["addresses"]} <= chronic
            assert all(a["detail"]["status"] and a["detail"]["kind"] for a in plan["activity"])


@cache
def specialties_by_npi(patients: int = 200, seed: int = 11) -> dict[str, str]:
    directory = next(generate_bundles(patients, seed=seed, anchor=ANCHOR))["entry"]
    by_urn = {e["fullUrl"]: e["resource"] for e in directory}
    out: dict[str, str] = {}
    for role in by_urn.values():
        if role["resourceType"] == "PractitionerRole":
            practitioner = by_urn[role["practitioner"]["reference"]]
            out[practitioner["identifier"][0]["value"]] = role["specialty"][0]["coding"][0]["code"]
    return out


def test_children_see_family_physicians_and_are_not_admitted() -> None:
    children = [r for r in records() if _age(r.patient) < 18]
    assert children
    specialties = specialties_by_npi()
    for record in children:
        gp_npi = record.patient["generalPractitioner"][0]["reference"].rsplit("|", 1)[1]
        assert specialties[gp_npi] == "207Q00000X"  # family medicine; internists see adults
        assert "contact" in record.patient and "maritalStatus" not in record.patient
        assert all(e["class"]["code"] != "IMP" for e in record.by_type["Encounter"])


def test_check_ups_are_about_a_year_apart() -> None:
    for record in records():
        checkups = sorted(
            date.fromisoformat(e["period"]["start"][:10])
            for e in record.by_type["Encounter"]
            if e["type"][0]["coding"][0]["code"] == "185349003"
        )
        assert checkups, "every patient has had a check-up"
        # office visits on weekends move back to Friday, shortening a gap by up to two days
        assert all((b - a).days >= 298 for a, b in pairwise(checkups))
