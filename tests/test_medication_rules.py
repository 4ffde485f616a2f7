"""The pure medication rules and tables, without a database: knowledge coverage, dose
arithmetic, class cross-reactivity and interaction lookup, site overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from fhirhub.fhir.errors import Unprocessable
from fhirhub.medication.concepts import drug_of
from fhirhub.medication.dose import daily_amount, strength_mg
from fhirhub.medication.knowledge import SNOMED, build, read_tables
from fhirhub.medication.rules import check_order, interactions_between
from tests.medication_support import RXNORM, allergy, order, statement

KB = build(read_tables())
P = "Patient/1"


def test_tables_cover_the_seed_corpus_and_synthea_products() -> None:
    assert len(KB.products) >= 300
    seed = Path("seed_data/medications_rxnorm.json").read_text()
    import json

    for med in json.loads(seed)["medications"]:
        assert med["code"] in KB.products, med
    for _, ingredients in KB.products.values():
        assert all(i in KB.ingredients for i in ingredients)
    onc = [p for p in KB.interactions if p.listed == "onc-high-priority"]
    assert len({(p.a, p.b) for p in onc}) >= 15


def test_strength_and_daily_amount() -> None:
    assert strength_mg("Acetaminophen 325 MG Oral Tablet") == 325
    assert strength_mg("Amoxicillin 250 MG / Clavulanate 125 MG Oral Tablet") is None
    dosage = order(P, "313782", dose=2, unit="{tbl}", per_day=4)["dosageInstruction"]
    amount, _ = daily_amount(dosage, "Acetaminophen 325 MG Oral Tablet")
    assert amount is not None and amount.mg_per_day == 2600
    every_6h = [
        {
            "timing": {"repeat": {"frequency": 1, "period": 6, "periodUnit": "h"}},
            "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "g", "code": "g"}}],
        }
    ]
    amount, _ = daily_amount(every_6h, None)
    assert amount is not None and amount.mg_per_day == 4000
    assert daily_amount([], None)[0] is None
    with pytest.raises(Unprocessable):
        daily_amount(order(P, "1", dose=0)["dosageInstruction"], None)


def test_cross_reactivity_and_same_class() -> None:
    penicillin = [("AllergyIntolerance/a", allergy(P, SNOMED, "91936005"))]
    amox = check_order(order(P, "308192"), [], penicillin, KB)
    assert [(f.code, f.severity) for f in amox.findings] == [("ALGY", "high")]
    cef = check_order(order(P, "309045"), [], penicillin, KB)
    assert [(f.code, f.severity) for f in cef.findings] == [("ALGY", "moderate")]
    nsaid = [("AllergyIntolerance/b", allergy(P, RXNORM, "1191"))]  # aspirin
    assert check_order(order(P, "198014"), [], nsaid, KB).highest == "high"  # naproxen
    ace = [("AllergyIntolerance/c", allergy(P, RXNORM, "29046", type="intolerance"))]
    losartan = check_order(order(P, "979485"), [], ace, KB)
    assert [(f.code, f.severity) for f in losartan.findings] == [("ALGY", "low")]


def test_interactions_by_class_in_both_directions() -> None:
    warfarin = drug_of(order(P, "855332"), "x", KB)
    naproxen = drug_of(order(P, "198014"), "y", KB)
    assert [p.severity for p in interactions_between(warfarin, naproxen, KB)] == ["high"]
    assert [p.severity for p in interactions_between(naproxen, warfarin, KB)] == ["high"]
    result = check_order(
        order(P, "1049221"), [("MedicationStatement/s", statement(P, "197591"))], [], KB
    )  # oxycodone/APAP with diazepam: opioid + benzodiazepine
    assert ("DRG", "high") in [(f.code, f.severity) for f in result.findings]


def test_unknown_codes_say_could_not_check() -> None:
    result = check_order(order(P, "0000"), [], [], KB)
    assert not result.findings and "could not be done" in result.unchecked[0]
    unknown_allergy = [("AllergyIntolerance/z", allergy(P, SNOMED, "123", category=["medication"]))]
    result = check_order(order(P, "308192"), [], unknown_allergy, KB)
    assert "allergen code not in the tables" in result.unchecked[0]


def test_a_site_overrides_and_adds_entries(tmp_path: Path) -> None:
    (tmp_path / "max_daily_doses.csv").write_text(
        "# site limit\ningredient,max_mg,period,severity,note\n"
        "acetaminophen,3000,d,moderate,Site policy: 3 g/day.\n"
    )
    (tmp_path / "products.csv").write_text(
        "rxcui,display,ingredients,kind,found_in\n"
        "999001,Local paracetamol 500 MG Oral Tablet,acetaminophen,product,site\n"
    )
    kb = build(read_tables(tmp_path))
    assert kb.doses["acetaminophen"].max_mg == 3000
    assert kb.doses["ibuprofen"].max_mg == 3200  # the rest stays
    result = check_order(order(P, "999001", dose=1000, per_day=4), [], [], kb)
    assert [(f.code, f.severity) for f in result.findings] == [("DOSEH", "moderate")]
