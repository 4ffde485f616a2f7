"""Drug knowledge tables (pure): parsing the shipped files and a site's overrides, and the
lookups the rules use. Matching is on codes only (RxNorm, SNOMED CT); display text is never
used to decide anything.

A site overrides or adds entries with files of the same names and formats in its own
directory (FHIRHUB_MEDICATION_KNOWLEDGE_DIR): a CSV row replaces the shipped row with the
same key; JSON pairs/allergens are added (a pair with the same a/b replaces the shipped
one) and classes are replaced by key.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
SHIPPED_DIR = Path(__file__).parent / "knowledge"
TABLES = ("products", "ingredients", "max_daily_doses", "interactions", "allergy_classes")
SEVERITIES = ("high", "moderate", "low")


class KnowledgeError(ValueError):
    """A knowledge file that cannot be read (reported with the file and row)."""


@dataclass(frozen=True)
class Ingredient:
    key: str
    rxcui: str
    atc: str
    drug_class: str


@dataclass(frozen=True)
class Interaction:
    a: str  # ingredient key or "class:<class key>"
    b: str
    severity: str
    text: str
    listed: str = ""


@dataclass(frozen=True)
class MaxDose:
    ingredient: str
    max_mg: float
    period: str  # "d" or "wk"
    severity: str
    note: str


@dataclass(frozen=True)
class AllergyClass:
    key: str
    name: str
    ingredient_classes: tuple[str, ...]
    cross: tuple[tuple[str, str, str], ...]  # (class key, severity, note)


@dataclass(frozen=True)
class Allergen:
    system: str
    code: str
    display: str
    allergy_class: str
    ingredients: tuple[str, ...]


@dataclass
class Knowledge:
    products: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    ingredients: dict[str, Ingredient] = field(default_factory=dict)
    doses: dict[str, MaxDose] = field(default_factory=dict)
    interactions: list[Interaction] = field(default_factory=list)
    allergy_classes: dict[str, AllergyClass] = field(default_factory=dict)
    allergens: dict[tuple[str, str], Allergen] = field(default_factory=dict)

    def ingredients_of(self, system: str, code: str) -> tuple[str, ...] | None:
        """Ingredient keys of an RxNorm concept (product or ingredient); None if unknown."""
        if system != RXNORM:
            return None
        entry = self.products.get(code)
        return entry[1] if entry else None

    def class_of(self, ingredient: str) -> str:
        found = self.ingredients.get(ingredient)
        return found.drug_class if found else ""

    def allergy_classes_of(self, ingredient: str) -> list[str]:
        drug_class = self.class_of(ingredient)
        return [k for k, c in self.allergy_classes.items() if drug_class in c.ingredient_classes]


def _csv_rows(text: str, name: str) -> list[dict[str, str]]:
    lines = [line for line in text.splitlines() if not line.startswith("#") and line.strip()]
    return list(csv.DictReader(io.StringIO("\n".join(lines))))


def parse_table(name: str, text: str) -> list[tuple[str, dict[str, Any]]]:
    """(key, record) pairs of one table file; records are plain JSON-able dicts."""
    try:
        if name == "products":
            return [
                (r["rxcui"], {"display": r["display"], "ingredients": r["ingredients"].split(";")})
                for r in _csv_rows(text, name)
            ]
        if name == "ingredients":
            return [
                (r["ingredient"], {"rxcui": r["rxcui"], "atc": r["atc"], "class": r["class"]})
                for r in _csv_rows(text, name)
            ]
        if name == "max_daily_doses":
            out = []
            for r in _csv_rows(text, name):
                if r["period"] not in ("d", "wk") or r["severity"] not in SEVERITIES:
                    raise KnowledgeError(f"max_daily_doses: bad period/severity in {r}")
                record = {k: r[k] for k in ("period", "severity", "note")}
                out.append((r["ingredient"], {**record, "max_mg": float(r["max_mg"])}))
            return out
        data = json.loads(text)
        if name == "interactions":
            pairs = []
            for p in data["pairs"]:
                if p["severity"] not in SEVERITIES:
                    raise KnowledgeError(f"interactions: bad severity in {p}")
                pairs.append(("|".join(sorted((p["a"], p["b"]))), p))
            return pairs
        if name == "allergy_classes":
            classes = [(f"class:{k}", v) for k, v in data.get("classes", {}).items()]
            allergens = [(f"allergen:{a['system']}|{a['code']}", a) for a in data["allergens"]]
            return classes + allergens
    except (KeyError, ValueError, TypeError) as exc:
        raise KnowledgeError(f"{name}: {exc}") from None
    raise KnowledgeError(f"unknown knowledge table {name!r}")


def file_name(table: str) -> str:
    return (
        f"{table}.csv"
        if table in ("products", "ingredients", "max_daily_doses")
        else (f"{table}.json")
    )


def read_tables(site_dir: Path | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """Every table as key -> record: the shipped files, then the site's files over them."""
    tables: dict[str, dict[str, dict[str, Any]]] = {}
    for table in TABLES:
        merged: dict[str, dict[str, Any]] = {}
        for folder in (SHIPPED_DIR, site_dir):
            path = folder / file_name(table) if folder else None
            if path is not None and path.is_file():
                merged.update(parse_table(table, path.read_text(encoding="utf-8")))
        tables[table] = merged
    return tables


def build(tables: dict[str, dict[str, dict[str, Any]]]) -> Knowledge:
    kb = Knowledge()
    for code, r in tables.get("products", {}).items():
        kb.products[code] = (r["display"], tuple(r["ingredients"]))
    for key, r in tables.get("ingredients", {}).items():
        kb.ingredients[key] = Ingredient(key, r["rxcui"], r["atc"], r["class"])
    for key, r in tables.get("max_daily_doses", {}).items():
        kb.doses[key] = MaxDose(key, r["max_mg"], r["period"], r["severity"], r["note"])
    for r in tables.get("interactions", {}).values():
        kb.interactions.append(
            Interaction(r["a"], r["b"], r["severity"], r["text"], r.get("list", ""))
        )
    for key, r in tables.get("allergy_classes", {}).items():
        if key.startswith("class:"):
            cross = tuple((c["class"], c["severity"], c.get("note", "")) for c in r["cross"])
            name = key.removeprefix("class:")
            kb.allergy_classes[name] = AllergyClass(
                name, r["name"], tuple(r["ingredient_classes"]), cross
            )
        else:
            kb.allergens[(r["system"], r["code"])] = Allergen(
                r["system"],
                r["code"],
                r.get("display", ""),
                r.get("class", ""),
                tuple(r.get("ingredients", ())),
            )
    return kb
