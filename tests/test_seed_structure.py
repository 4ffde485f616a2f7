"""Every generated resource checked against the official R4 StructureDefinitions: element names
(choice types included), cardinality, required elements, primitive formats, reference targets,
required-strength bindings, and codes/displays of the code systems shipped in the R4 package."""

from __future__ import annotations

import re
from datetime import date
from functools import cache
from typing import Any

import pytest

from fhirhub.fhir.definitions import Definitions
from fhirhub.seed import DEFAULT_PATIENTS, generate_bundles

Json = dict[str, Any]
ANCHOR = date(2025, 3, 14)
FHIRPATH_STRING = "http://hl7.org/fhirpath/System.String"
INTEGER_TYPES = {"integer", "positiveInt", "unsignedInt"}


@cache
def bundles(patients: int, seed: int) -> tuple[Json, ...]:
    return tuple(generate_bundles(patients, seed=seed, anchor=ANCHOR))


def _flatten(concepts: list[Json]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for concept in concepts:
        out[concept["code"]] = concept.get("display")
        out.update(_flatten(concept.get("concept", [])))
    return out


class R4Checker:
    def __init__(self, definitions: Definitions):
        self.defs = definitions
        self._indexes: dict[str, dict[str, Json]] = {}
        self._children: dict[tuple[str, str], dict[str, Json]] = {}
        self._regex: dict[str, re.Pattern[str] | None] = {}
        self._value_sets: dict[str, set[str] | None] = {}
        self._code_systems: dict[str, dict[str, str | None]] = {}

    # -- definitions -------------------------------------------------------------------------
    def index(self, type_name: str) -> dict[str, Json]:
        if type_name not in self._indexes:
            sd = self.defs.resource_types.get(type_name) or self.defs.datatypes[type_name]
            self._indexes[type_name] = {e["path"]: e for e in sd["snapshot"]["element"]}
        return self._indexes[type_name]

    def children(self, type_name: str, path: str) -> dict[str, Json]:
        key = (type_name, path)
        if key not in self._children:
            prefix = path + "."
            self._children[key] = {
                p[len(prefix) :]: e
                for p, e in self.index(type_name).items()
                if p.startswith(prefix) and "." not in p[len(prefix) :]
            }
        return self._children[key]

    def regex(self, primitive: str) -> re.Pattern[str] | None:
        if primitive not in self._regex:
            pattern = None
            for element in self.defs.datatypes[primitive]["snapshot"]["element"]:
                if element["path"] == f"{primitive}.value":
                    for ext in element["type"][0].get("extension", []):
                        if ext["url"].endswith("/regex"):
                            pattern = re.compile(ext["valueString"])
            self._regex[primitive] = pattern
        return self._regex[primitive]

    def code_system(self, url: str) -> dict[str, str | None]:
        if url not in self._code_systems:
            self._code_systems[url] = _flatten(self.defs.code_systems[url].get("concept", []))
        return self._code_systems[url]

    def value_set_codes(self, url: str) -> set[str] | None:
        """Codes of an enumerable value set, None when it cannot be expanded from the package."""
        url = url.split("|")[0]
        if url not in self._value_sets:
            codes: set[str] | None = set()
            vs = self.defs.value_sets.get(url)
            if vs is None:
                codes = None
            else:
                for include in vs.get("compose", {}).get("include", []):
                    if "concept" in include:
                        codes |= {c["code"] for c in include["concept"]}  # type: ignore[operator]
                    elif "filter" in include or include.get("system") not in self.defs.code_systems:
                        codes = None
                        break
                    else:
                        codes |= set(self.code_system(include["system"]))  # type: ignore[operator]
            self._value_sets[url] = codes
        return self._value_sets[url]

    # -- checking ----------------------------------------------------------------------------
    def check_resource(self, resource: Json, urn_types: dict[str, str]) -> list[str]:
        errors: list[str] = []
        rtype = resource["resourceType"]
        self._object(resource, rtype, rtype, rtype, urn_types, errors)
        return errors

    def _object(
        self,
        obj: Json,
        type_name: str,
        path: str,
        where: str,
        urn_types: dict[str, str],
        errors: list[str],
    ) -> None:
        if not obj:
            errors.append(f"{where}: empty object")
            return
        children = self.children(type_name, path)
        seen: set[str] = set()
        for key, value in obj.items():
            if (
                key == "resourceType"
                and path == type_name
                and type_name in self.defs.resource_types
            ):
                continue
            match = self._match(children, key)
            if match is None:
                errors.append(f"{where}.{key}: not an element of {path} in R4")
                continue
            name, element, type_code = match
            seen.add(name)
            many = element["max"] != "1"
            if many != isinstance(value, list):
                errors.append(
                    f"{where}.{key}: cardinality {element['min']}..{element['max']} violated"
                )
                continue
            items = value if isinstance(value, list) else [value]
            if not items:
                errors.append(f"{where}.{key}: empty array")
            for i, item in enumerate(items):
                self._value(
                    item,
                    element,
                    type_code,
                    type_name,
                    f"{where}.{key}" + (f"[{i}]" if many else ""),
                    urn_types,
                    errors,
                )
        for name, element in children.items():
            if element["min"] > 0 and name not in seen:
                errors.append(
                    f"{where}.{name}: required ({element['min']}..{element['max']}) but missing"
                )

    @staticmethod
    def _match(children: dict[str, Json], key: str) -> tuple[str, Json, str | None] | None:
        if key in children:
            types = children[key].get("type", [])
            return key, children[key], types[0]["code"] if len(types) == 1 else None
        for name, element in children.items():
            if name.endswith("[x]") and key.startswith(name[:-3]):
                suffix = key[len(name) - 3 :]
                for t in element["type"]:
                    if t["code"][0].upper() + t["code"][1:] == suffix:
                        return name, element, t["code"]
        return None

    def _value(
        self,
        value: Any,
        element: Json,
        type_code: str | None,
        type_name: str,
        where: str,
        urn_types: dict[str, str],
        errors: list[str],
    ) -> None:
        if "contentReference" in element:
            target = element["contentReference"].lstrip("#")
            if not isinstance(value, dict):
                errors.append(f"{where}: expected an object")
                return
            self._object(value, type_name, target, where, urn_types, errors)
            return
        assert type_code is not None, where
        binding = element.get("binding", {})
        if type_code in ("BackboneElement", "Element"):
            if not isinstance(value, dict):
                errors.append(f"{where}: expected an object")
                return
            self._object(value, type_name, element["path"], where, urn_types, errors)
        elif type_code == "Resource":
            if not isinstance(value, dict) or "resourceType" not in value:
                errors.append(f"{where}: expected a resource")
        elif (
            type_code == FHIRPATH_STRING
            or self.defs.datatypes[type_code]["kind"] == "primitive-type"
        ):
            self._primitive(
                value, "string" if type_code == FHIRPATH_STRING else type_code, where, errors
            )
            if type_code == "code" and binding.get("strength") == "required":
                allowed = self.value_set_codes(binding["valueSet"])
                if allowed is not None and value not in allowed:
                    errors.append(
                        f"{where}: {value!r} not in required value set {binding['valueSet']}"
                    )
        else:
            if not isinstance(value, dict):
                errors.append(f"{where}: expected a {type_code} object")
                return
            self._object(value, type_code, type_code, where, urn_types, errors)
            if type_code == "Coding":
                self._coding(value, where, errors)
            if type_code == "Reference":
                self._reference(value, element, where, urn_types, errors)
            if binding.get("strength") == "required" and type_code in ("Coding", "CodeableConcept"):
                allowed = self.value_set_codes(binding["valueSet"])
                codings = value.get("coding", []) if type_code == "CodeableConcept" else [value]
                if allowed is not None and not any(c.get("code") in allowed for c in codings):
                    errors.append(f"{where}: no code from required value set {binding['valueSet']}")

    def _primitive(self, value: Any, primitive: str, where: str, errors: list[str]) -> None:
        if primitive == "boolean":
            ok = isinstance(value, bool)
        elif primitive in INTEGER_TYPES:
            ok = isinstance(value, int) and not isinstance(value, bool)
            ok = ok and (
                value > 0
                if primitive == "positiveInt"
                else value >= 0
                if primitive == "unsignedInt"
                else True
            )
        elif primitive == "decimal":
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        else:
            ok = isinstance(value, str) and value != ""
            pattern = self.regex(primitive) if ok else None
            ok = ok and (pattern is None or pattern.fullmatch(value) is not None)
        if not ok:
            errors.append(f"{where}: {value!r} is not a valid {primitive}")

    def _coding(self, coding: Json, where: str, errors: list[str]) -> None:
        system, code = coding.get("system"), coding.get("code")
        if system is None or code is None:
            errors.append(f"{where}: coding without system and code")
            return
        if system not in self.defs.code_systems:
            return
        concepts = self.code_system(system)
        if code not in concepts:
            if self.defs.code_systems[system].get("content") == "complete":
                errors.append(f"{where}: {code!r} is not a code of {system}")
            return
        expected = concepts[code]
        if "display" in coding and expected is not None and coding["display"] != expected:
            errors.append(
                f"{where}: display {coding['display']!r} for {system}|{code}, R4 says {expected!r}"
            )

    def _reference(
        self,
        reference: Json,
        element: Json,
        where: str,
        urn_types: dict[str, str],
        errors: list[str],
    ) -> None:
        target = reference.get("reference")
        if target is None:
            return
        if target.startswith("urn:uuid:"):
            if target not in urn_types:
                errors.append(f"{where}: {target} does not resolve within the bundle")
                return
            target_type = urn_types[target]
        else:
            target_type = re.split(r"[?/]", target, maxsplit=1)[0]
        allowed = {
            profile.rsplit("/", 1)[1]
            for t in element["type"]
            if t["code"] == "Reference"
            for profile in t.get("targetProfile", [])
        }
        if allowed and "Resource" not in allowed and target_type not in allowed:
            errors.append(f"{where}: reference to {target_type}, R4 allows {sorted(allowed)}")


@pytest.fixture(scope="module")
def checker(definitions: Definitions) -> R4Checker:
    return R4Checker(definitions)


def _check_bundles(checker: R4Checker, generated: tuple[Json, ...]) -> list[str]:
    errors: list[str] = []
    for bundle in generated:
        urn_types = {e["fullUrl"]: e["resource"]["resourceType"] for e in bundle["entry"]}
        errors += checker.check_resource(bundle, urn_types)
        for entry in bundle["entry"]:
            errors += checker.check_resource(entry["resource"], urn_types)
    return errors


def test_default_set_is_structurally_valid_r4(checker: R4Checker) -> None:
    errors = _check_bundles(checker, bundles(DEFAULT_PATIENTS, 42))
    assert not errors, "\n".join(sorted(set(errors))[:50])


def test_larger_set_with_other_seed_is_structurally_valid_r4(checker: R4Checker) -> None:
    errors = _check_bundles(checker, bundles(150, 7))
    assert not errors, "\n".join(sorted(set(errors))[:50])


def test_every_resource_type_is_checked(checker: R4Checker) -> None:
    types = {
        e["resource"]["resourceType"] for b in bundles(DEFAULT_PATIENTS, 42) for e in b["entry"]
    }
    assert types == {
        "Organization",
        "Location",
        "Practitioner",
        "PractitionerRole",
        "Schedule",
        "Endpoint",
        "Patient",
        "CareTeam",
        "Encounter",
        "Observation",
        "Condition",
        "AllergyIntolerance",
        "MedicationRequest",
        "CarePlan",
        "Appointment",
    }


@pytest.mark.parametrize(
    ("resource", "fragment"),
    [
        # R5 shapes that are not R4
        (
            {"resourceType": "AllergyIntolerance", "subject": {"reference": "Patient/1"}},
            "subject: not an element",
        ),
        (
            {"resourceType": "Encounter", "status": "finished", "class": [{"code": "AMB"}]},
            "class: cardinality",
        ),
        ({"resourceType": "Endpoint", "status": "active"}, "connectionType: required"),
        (
            {"resourceType": "Observation", "status": "final", "code": {}, "valueFoo": 1},
            "valueFoo: not an element",
        ),
        ({"resourceType": "Patient", "birthDate": "1990-13-01"}, "not a valid date"),
        (
            {
                "resourceType": "Appointment",
                "status": "booked",
                "participant": [{"status": "maybe"}],
            },
            "required value set",
        ),
        (
            {"resourceType": "Patient", "generalPractitioner": [{"reference": "Observation/1"}]},
            "reference to Observation",
        ),
        (
            {
                "resourceType": "Patient",
                "maritalStatus": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus",
                            "code": "M",
                            "display": "Wed",
                        }
                    ]
                },
            },
            "R4 says 'Married'",
        ),
    ],
)
def test_checker_rejects_invalid_shapes(checker: R4Checker, resource: Json, fragment: str) -> None:
    errors = checker.check_resource(resource, {})
    assert any(fragment in e for e in errors), errors
