"""The shipped knowledge tables hold together: every reference between tables resolves, no
code is given two meanings, and each row says how it was verified (pure, no database)."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict

from fhirhub.medication.knowledge import RXNORM, SHIPPED_DIR, build, read_tables

KB = build(read_tables())
VERIFIED = {"cpic", "atc-list", "corpus", "unverified", "no-code"}


def _rows(name: str) -> list[dict[str, str]]:
    text = (SHIPPED_DIR / name).read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return list(csv.DictReader(io.StringIO("\n".join(lines))))


def _json(name: str) -> dict:
    return json.loads((SHIPPED_DIR / name).read_text(encoding="utf-8"))


def test_every_file_names_its_source_licence_and_verification() -> None:
    for name in ("products.csv", "ingredients.csv", "max_daily_doses.csv"):
        header = (SHIPPED_DIR / name).read_text(encoding="utf-8").split("\n# Format")[0]
        assert "# Source:" in header and "# Licence:" in header, name
        assert "Verification" in header, name
    for name in ("interactions.json", "allergy_classes.json"):
        data = _json(name)
        assert data["source"] and data["licence"] and data["verification"], name


def test_products_resolve_to_ingredients_and_codes_are_unique() -> None:
    rows = _rows("products.csv")
    codes = [r["rxcui"] for r in rows]
    assert len(codes) == len(set(codes)), "a product code appears twice"
    for r in rows:
        for key in r["ingredients"].split(";"):
            assert key in KB.ingredients, r
    # An ingredient-level row must carry the ingredient's own code, or the two tables disagree.
    for r in (r for r in rows if r["kind"] == "IN"):
        (key,) = r["ingredients"].split(";")
        assert KB.ingredients[key].rxcui == r["rxcui"], r


def test_ingredient_codes_have_one_name_and_a_verification() -> None:
    rows = _rows("ingredients.csv")
    names = [r["ingredient"] for r in rows]
    assert len(names) == len(set(names))
    by_code: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        assert set(r["verified"].split("+")) <= VERIFIED, r
        assert (r["verified"] == "no-code") == (r["rxcui"] == ""), r
        if r["rxcui"]:
            by_code[r["rxcui"]].add(r["ingredient"])
    assert {c: n for c, n in by_code.items() if len(n) > 1} == {}
    # The two codes found wrong in verification stay out.
    assert "6058" not in by_code and "7517" not in by_code
    assert "6058" not in KB.products and "7517" not in KB.products


def test_product_codes_never_collide_with_other_ingredients() -> None:
    ingredient_of = {i.rxcui: key for key, i in KB.ingredients.items() if i.rxcui}
    for code, (_, ingredients) in KB.products.items():
        if code in ingredient_of:
            assert ingredients == (ingredient_of[code],), code


def test_interactions_name_known_ingredients_and_classes() -> None:
    classes = {i.drug_class for i in KB.ingredients.values()}
    for pair in KB.interactions:
        for term in (pair.a, pair.b):
            if term.startswith("class:"):
                assert term.removeprefix("class:") in classes, pair
            else:
                assert term in KB.ingredients, pair
    keys = [tuple(sorted((p.a, p.b))) for p in KB.interactions]
    assert len(keys) == len(set(keys))
    onc = [p for p in _json("interactions.json")["pairs"] if p.get("list")]
    assert all(p["list"] == "onc-high-priority" and 1 <= p["onc"] <= 15 for p in onc)
    assert all(p["severity"] == "high" for p in onc)
    assert len({p["onc"] for p in onc}) == 13  # 3 and 14 are not covered (README)


def test_allergy_tables_resolve() -> None:
    classes = {i.drug_class for i in KB.ingredients.values()}
    for key, allergy_class in KB.allergy_classes.items():
        assert set(allergy_class.ingredient_classes) <= classes, key
        for cross, severity, _ in allergy_class.cross:
            assert cross in KB.allergy_classes and severity in ("high", "moderate", "low")
    seen: dict[tuple[str, str], str] = {}
    for (system, code), allergen in KB.allergens.items():
        assert allergen.allergy_class in KB.allergy_classes, code
        assert all(i in KB.ingredients for i in allergen.ingredients), code
        seen[(system, code)] = allergen.display
        if system == RXNORM and code in KB.products:
            # An RxNorm allergen code means the same as the product/ingredient row.
            assert set(allergen.ingredients) <= set(KB.products[code][1]), code
    assert len(seen) == len(_json("allergy_classes.json")["allergens"]), "duplicate allergen"


def test_max_doses_name_known_ingredients() -> None:
    for key, dose in KB.doses.items():
        assert key in KB.ingredients and dose.max_mg > 0, key
