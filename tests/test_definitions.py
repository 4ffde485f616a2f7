from __future__ import annotations

from fhirhub.fhir.definitions import Definitions


def test_core_package_indexes(definitions: Definitions) -> None:
    types = definitions.resource_types
    assert len(types) == 146  # every concrete R4 resource type
    for name in ("Patient", "Encounter", "MedicationRequest", "CarePlan", "CareTeam", "Endpoint"):
        assert name in types
    assert "DomainResource" not in types
    assert "string" in definitions.datatypes and "HumanName" in definitions.datatypes


def test_search_parameters_and_compartments(definitions: Definitions) -> None:
    patient_params = definitions.search_parameters_for("Patient")
    assert {"name", "birthdate", "identifier", "_id", "_lastUpdated"} <= set(patient_params)
    compartment = definitions.compartment_definitions["Patient"]
    observation = next(r for r in compartment["resource"] if r["code"] == "Observation")
    assert "subject" in observation["param"]


def test_value_sets(definitions: Definitions) -> None:
    gender = definitions.value_sets["http://hl7.org/fhir/ValueSet/administrative-gender"]
    assert gender["resourceType"] == "ValueSet"
    assert "http://hl7.org/fhir/administrative-gender" in definitions.code_systems
