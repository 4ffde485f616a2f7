"""Loads the reference tables under seed_data/ (see seed_data/README.md) into typed rows.

The tables are parsed once per process; generation then only does attribute lookups.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

from fhirhub.config import PROJECT_ROOT
from fhirhub.seed.elements import LOINC, RXNORM, SNOMED, THO, Term, tho
from fhirhub.seed.models import (
    SEXES,
    AllergenDef,
    Bounds,
    CarePlanActivity,
    CarePlanDef,
    ConditionDef,
    EncounterKind,
    LabTest,
    MedicationChoice,
    MedicationDef,
    Place,
    Range,
    Specialty,
    VitalSign,
    Vocabulary,
)

SEED_DATA_DIR = PROJECT_ROOT / "seed_data"


def _load(root: Path, name: str) -> Any:
    return orjson.loads((root / name).read_bytes())


def _range(raw: Any) -> Range:
    return (float(raw[0]), float(raw[1]))


def _pair(raw: Any) -> tuple[int, int]:
    return (int(raw[0]), int(raw[1]))


def _vital(row: dict[str, Any]) -> VitalSign:
    return VitalSign(
        key=row["key"],
        term=Term(LOINC, row["code"], row["display"]),
        profile=row.get("profile"),
        unit=row.get("unit", ""),
        unit_display=row.get("unit_display", row.get("unit", "")),
        decimals=row.get("decimals", 0),
        ranges={k: _range(row[k]) for k in ("adult", "child") if k in row},
        jitter=float(row.get("jitter", 0)),
        high=row.get("high"),
        ceiling=row.get("max"),
        extra_codings=tuple(
            Term(LOINC, c["code"], c["display"]) for c in row.get("extra_codings", [])
        ),
        components=tuple(_vital(c) for c in row.get("components", [])),
    )


def _lab(row: dict[str, Any], unit_display: dict[str, str]) -> LabTest:
    by_sex = row.get("range_by_sex") or {sex: row["range"] for sex in SEXES}
    reference: dict[str, Bounds] = {sex: (by_sex[sex][0], by_sex[sex][1]) for sex in SEXES}
    typical: dict[str, Range] = {}
    for sex, (low, high) in reference.items():
        if "typical" in row:
            typical[sex] = _range(row["typical"])
        else:
            assert low is not None and high is not None, row["code"]
            margin = (high - low) * 0.1  # keep most healthy draws inside the reference range
            typical[sex] = (low + margin, high - margin)
    return LabTest(
        term=Term(LOINC, row["code"], row["display"]),
        unit=row["unit"],
        unit_display=unit_display.get(row["unit"], row["unit"]),
        decimals=row["decimals"],
        reference=reference,
        typical=typical,
        groups=tuple(row["groups"]),
    )


def _condition(row: dict[str, Any], activities: dict[str, CarePlanActivity]) -> ConditionDef:
    meds = row.get("medications")
    plan = row.get("careplan")
    return ConditionDef(
        term=Term(SNOMED, row["code"], row["display"]),
        chronic=row["kind"] == "chronic",
        prevalence=row.get("prevalence", 0.0),
        min_age=row.get("min_age", 0),
        rising=row.get("rising", False),
        sex=row.get("sex", {}),
        risk=row.get("risk", {}),
        excludes=tuple(row.get("excludes", [])),
        specialty=row.get("specialty"),
        medications=MedicationChoice(meds["pick"], tuple((c, float(p)) for c, p in meds["options"]))
        if meds
        else None,
        labs=tuple(row.get("labs", [])),
        lab_effects={k: _range(v) for k, v in row.get("lab_effects", {}).items()},
        vital_effects={k: _range(v) for k, v in row.get("vital_effects", {}).items()},
        careplan=CarePlanDef(
            category=Term(SNOMED, *plan["category"]),
            title=plan["title"],
            activities=tuple(activities[a] for a in plan["activities"]),
        )
        if plan
        else None,
        settings=row.get("settings", {}),
        course_days=_pair(row.get("course_days", [0, 0])),
    )


def _medication(row: dict[str, Any], tables: dict[str, Any]) -> MedicationDef:
    route = tables["routes"][row["route"]]
    timing = tables["timings"][row["timing"]]
    value, unit = row["dose"]
    return MedicationDef(
        term=Term(RXNORM, row["code"], row["display"]),
        dose=(value, unit, tables["dose_units"][unit]),
        route=Term(SNOMED, route["code"], route["display"]),
        route_verb=route["verb"],
        timing=Term(THO + "v3-GTSAbbreviation", row["timing"], timing["display"]),
        repeat=(timing["frequency"], timing["period"], timing["periodUnit"]),
        timing_text=timing["text"],
        prn=row.get("prn"),
        note=row.get("note"),
        course_days=row.get("course_days"),
        allergens=tuple(row.get("allergens", [])),
    )


def _allergen(row: dict[str, Any], tables: dict[str, Any]) -> AllergenDef:
    names = tables["manifestations"]
    system = RXNORM if row["system"] == "rxnorm" else SNOMED
    return AllergenDef(
        term=Term(system, row["code"], row["display"]),
        type=row["type"],
        category=row["category"],
        prevalence=row["prevalence"],
        min_age=row.get("min_age", 0),
        reactions=tuple(Term(SNOMED, code, names[code]) for code in row["reactions"]),
        severe=frozenset(tables["severe_manifestations"]),
    )


def _encounter_kind(key: str, row: dict[str, Any], tables: dict[str, Any]) -> EncounterKind:
    appointment = row.get("appointment_type")
    return EncounterKind(
        key=key,
        act_class=tho("v3-ActCode", row["class"], tables["classes"][row["class"]]),
        type=Term(SNOMED, *row["type"]),
        appointment_type=tho("v2-0276", appointment, tables["appointment_types"][appointment])
        if appointment
        else None,
        minutes=_pair(row["minutes"]) if "minutes" in row else None,
        days=_pair(row["days"]) if "days" in row else None,
        weight=row["weight"],
        min_age=row.get("min_age", 0),
        vitals=tuple(row["vitals"]),
        lab_groups=tuple(row["lab_groups"]),
    )


def _specialty(key: str, row: dict[str, Any]) -> Specialty:
    return Specialty(
        key=key,
        nucc=Term("http://nucc.org/provider-taxonomy", *row["nucc"]),
        practice=Term(SNOMED, *row["practice"]),
        role=Term(SNOMED, *row["role"]),
        service=tho("service-type", *row["service"]),
        primary_care=row.get("primary_care", False),
    )


@lru_cache(maxsize=4)
def load_vocabulary(root: Path = SEED_DATA_DIR) -> Vocabulary:
    names = _load(root, "names.json")
    vitals = _load(root, "loinc_vitals.json")
    labs = _load(root, "loinc_labs.json")
    conditions = _load(root, "conditions_snomed.json")
    meds = _load(root, "medications_rxnorm.json")
    allergies = _load(root, "allergies.json")
    directory = _load(root, "directory.json")
    encounters = _load(root, "encounters.json")

    lab_tests = {row["code"]: _lab(row, labs["unit_display"]) for row in labs["labs"]}
    groups: dict[str, list[str]] = {}
    for code, test in lab_tests.items():
        for group in test.groups:
            groups.setdefault(group, []).append(code)
    activities = {
        key: CarePlanActivity(
            Term(SNOMED, a["code"], a["display"]),
            a["kind"],
            a["description"],
            (int(a["timing"][0]), int(a["timing"][1]), str(a["timing"][2]))
            if "timing" in a
            else None,
        )
        for key, a in conditions["careplan_activities"].items()
    }
    return Vocabulary(
        given={sex: tuple(names["given"][sex]) for sex in SEXES},
        family=tuple(names["family"]),
        streets=tuple(names["streets"]),
        street_suffixes=tuple(names["street_suffixes"]),
        cities=tuple(Place(c["city"], c["postalCode"], c["district"]) for c in names["cities"]),
        state=names["state"],
        country=names["country"],
        area_codes=tuple(names["area_codes"]),
        languages=tuple(
            (Term("urn:ietf:bcp:47", x["code"], x["display"]), x["text"])
            for x in names["languages"]
        ),
        language_weights=tuple(float(x["weight"]) for x in names["languages"]),
        marital=tuple(
            tho("v3-MaritalStatus", x["code"], x["display"]) for x in names["marital_status"]
        ),
        marital_weights=tuple(float(x["weight"]) for x in names["marital_status"]),
        vitals={row["key"]: _vital(row) for row in vitals["vitals"]},
        adult_height={sex: _range(v) for sex, v in vitals["adult_height_cm"].items()},
        child_height={
            sex: tuple(sorted((int(age), float(cm)) for age, cm in table.items()))
            for sex, table in vitals["child_height_cm"].items()
        },
        labs=lab_tests,
        lab_groups={k: tuple(v) for k, v in groups.items()},
        conditions=tuple(_condition(row, activities) for row in conditions["conditions"]),
        medications={row["code"]: _medication(row, meds) for row in meds["medications"]},
        allergens=tuple(_allergen(row, allergies) for row in allergies["allergens"]),
        directory=directory,
        covering_role=Term(SNOMED, *directory["covering_role"]),
        specialties={k: _specialty(k, v) for k, v in directory["specialties"].items()},
        rotation=tuple(directory["rotation"]),
        encounter_kinds={
            k: _encounter_kind(k, v, encounters) for k, v in encounters["kinds"].items()
        },
        history_days=encounters["history_days"],
    )
