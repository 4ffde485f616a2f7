"""Typed records: rows of the reference tables (see seed_data/README.md) and the directory
(sites and clinicians) that patient records point at."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhirhub.seed.elements import (
    LOCATION_SYSTEM,
    NPI_SYSTEM,
    ROLE_SYSTEM,
    Json,
    Term,
    conditional_url,
    ref,
)

Range = tuple[float, float]
Bounds = tuple[float | None, float | None]
SEXES = ("male", "female")


@dataclass(frozen=True)
class VitalSign:
    key: str
    term: Term
    profile: str | None
    unit: str
    unit_display: str
    decimals: int
    ranges: dict[str, Range]  # "adult" / "child" -> usual range
    jitter: float
    high: float | None
    ceiling: float | None
    extra_codings: tuple[Term, ...]
    components: tuple[VitalSign, ...]


@dataclass(frozen=True)
class LabTest:
    term: Term
    unit: str
    unit_display: str
    decimals: int
    reference: dict[str, Bounds]  # by sex
    typical: dict[str, Range]  # by sex: where healthy values are drawn from
    groups: tuple[str, ...]


@dataclass(frozen=True)
class CarePlanActivity:
    term: Term
    kind: str
    description: str
    timing: tuple[int, int, str] | None


@dataclass(frozen=True)
class CarePlanDef:
    category: Term
    title: str
    activities: tuple[CarePlanActivity, ...]


@dataclass(frozen=True)
class MedicationChoice:
    pick: str  # "one": exactly one option; "any": each option independently
    options: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class ConditionDef:
    term: Term
    chronic: bool
    prevalence: float
    min_age: int
    rising: bool
    sex: dict[str, float]
    risk: dict[str, float]
    excludes: tuple[str, ...]
    specialty: str | None
    medications: MedicationChoice | None
    labs: tuple[str, ...]
    lab_effects: dict[str, Range]
    vital_effects: dict[str, Range]
    careplan: CarePlanDef | None
    settings: dict[str, float]  # acute only: encounter kind -> weight
    course_days: tuple[int, int]


@dataclass(frozen=True)
class MedicationDef:
    term: Term
    dose: tuple[float, str, str]  # value, UCUM code, display unit
    route: Term
    route_verb: str
    timing: Term
    repeat: tuple[int, float, str]  # frequency, period, periodUnit
    timing_text: str
    prn: str | None
    note: str | None
    course_days: int | None
    allergens: tuple[str, ...]

    def instruction(self) -> str:
        value, _, unit = self.dose
        amount = f"{value:g} {unit}" + ("s" if unit in ("puff", "spray") and value != 1 else "")
        text = f"{amount} {self.route_verb} {self.timing_text}"
        if self.prn:
            text += f" as needed for {self.prn}"
        if self.note:
            text += f", {self.note}"
        return text[0].upper() + text[1:]


@dataclass(frozen=True)
class AllergenDef:
    term: Term
    type: str
    category: str
    prevalence: float
    min_age: int
    reactions: tuple[Term, ...]
    severe: frozenset[str]


@dataclass(frozen=True)
class Specialty:
    key: str
    nucc: Term
    practice: Term
    role: Term
    service: Term
    primary_care: bool


@dataclass(frozen=True)
class EncounterKind:
    key: str
    act_class: Term
    type: Term
    appointment_type: Term | None
    minutes: tuple[int, int] | None
    days: tuple[int, int] | None
    weight: float
    min_age: int
    vitals: tuple[str, ...]
    lab_groups: tuple[str, ...]


@dataclass(frozen=True)
class Place:
    city: str
    postal_code: str
    district: str


@dataclass(frozen=True)
class Vocabulary:
    given: dict[str, tuple[str, ...]]
    family: tuple[str, ...]
    streets: tuple[str, ...]
    street_suffixes: tuple[str, ...]
    cities: tuple[Place, ...]
    state: str
    country: str
    area_codes: tuple[str, ...]
    languages: tuple[tuple[Term, str], ...]
    language_weights: tuple[float, ...]
    marital: tuple[Term, ...]
    marital_weights: tuple[float, ...]
    vitals: dict[str, VitalSign]
    adult_height: dict[str, Range]  # mean, sd
    child_height: dict[str, tuple[tuple[int, float], ...]]
    labs: dict[str, LabTest]
    lab_groups: dict[str, tuple[str, ...]]
    conditions: tuple[ConditionDef, ...]
    medications: dict[str, MedicationDef]
    allergens: tuple[AllergenDef, ...]
    directory: dict[str, Any]
    covering_role: Term
    specialties: dict[str, Specialty]
    rotation: tuple[str, ...]
    encounter_kinds: dict[str, EncounterKind]
    history_days: int


@dataclass(frozen=True)
class Site:
    """An Organization and the Location where it sees patients."""

    urn: str
    npi: str
    name: str
    location_urn: str
    location_id: str
    location_type: Term
    place: Place
    line: str
    phone: str

    def org_ref(self) -> Json:
        return ref(conditional_url("Organization", NPI_SYSTEM, self.npi), self.name)

    def location_ref(self) -> Json:
        return ref(conditional_url("Location", LOCATION_SYSTEM, self.location_id), self.name)


@dataclass(frozen=True)
class Clinician:
    npi: str
    name: str
    specialty: Specialty
    site: Site
    role_id: str

    def practitioner_ref(self) -> Json:
        return ref(conditional_url("Practitioner", NPI_SYSTEM, self.npi), self.name)

    def role_ref(self) -> Json:
        return ref(conditional_url("PractitionerRole", ROLE_SYSTEM, self.role_id), self.name)


@dataclass(frozen=True)
class Directory:
    hospital: Site
    clinics: tuple[Site, ...]
    clinicians: tuple[Clinician, ...]
    by_specialty: dict[str, tuple[Clinician, ...]]
    entries: tuple[Json, ...]

    def primary_care(self, children: bool = False) -> tuple[Clinician, ...]:
        # Internists in the US see adults only; family physicians see all ages.
        keys = ("family",) if children else ("family", "internal")
        return tuple(c for key in keys for c in self.by_specialty.get(key, ()))
