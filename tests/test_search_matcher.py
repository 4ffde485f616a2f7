"""The in-memory matcher (used by subscriptions) agrees with the database search."""

from __future__ import annotations

from datetime import date

import pytest

from fhirhub.hub import Hub
from fhirhub.seed_loader import load_seed
from fhirhub.storage.documents import RESOURCES, decode_resource

QUERIES = [
    "Patient?gender=female",
    "Patient?gender:not=male",
    "Patient?name=a",
    "Patient?name:contains=son",
    "Patient?birthdate=lt1970",
    "Patient?birthdate=ge1990-01-01",
    "Patient?identifier=https://fhirhub.example/mrn|",
    "Patient?active=true",
    "Patient?address-city=boston",
    "Observation?code=http://loinc.org|8867-4",
    "Observation?code=http://loinc.org|8480-6,http://loinc.org|4548-4",
    "Observation?category=vital-signs",
    "Observation?category=laboratory&value-quantity=gt6",
    "Observation?value-quantity=le60||/min",
    "Observation?date=ge2024-01-01",
    "Observation?date=2023",
    "Observation?status=final&code:text=heart",
    "Observation?combo-code=http://loinc.org|8480-6",
    "Observation?performer:missing=true",
    "Encounter?class=AMB",
    "Encounter?date=lt2024",
    "Condition?clinical-status=active",
    "Condition?code:text=diabetes",
    "MedicationRequest?status=active",
    "MedicationRequest?code=http://www.nlm.nih.gov/research/umls/rxnorm|",
    "Appointment?status=booked",
    "Appointment?date=ge2026-01-01",
    "CarePlan?status=active&category=assess-plan",
    "CareTeam?status=active",
    "AllergyIntolerance?criticality=high",
    "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|",
    "Observation?_lastUpdated=ge2000-01-01",
]


@pytest.fixture
def seeded(indexed_hub: Hub) -> Hub:
    hub = indexed_hub
    load_seed(hub, 6, seed=7, anchor=date(2025, 6, 1))
    return hub


def test_matcher_agrees_with_database(seeded: Hub) -> None:
    search = seeded.search
    nonempty = 0
    for criteria in QUERIES:
        resource_type, _, query_string = criteria.partition("?")
        from_db = {r["id"] for r in search.find_resources(resource_type, query_string, 100_000)}
        everything = seeded.db[RESOURCES].find({"t": resource_type, "del": False})
        resources = [decode_resource(d["res"]) or {} for d in everything]
        in_memory = {r["id"] for r in resources if search.matches(criteria, r)}
        assert from_db == in_memory, criteria
        nonempty += bool(from_db)
    # The comparison only means something if most queries actually select something.
    assert nonempty >= len(QUERIES) * 2 // 3, nonempty
