"""State shared by the modules that together write one patient's record."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from random import Random

from fhirhub.seed.calendar import Calendar
from fhirhub.seed.elements import Json, entry, ref
from fhirhub.seed.models import (
    AllergenDef,
    Clinician,
    ConditionDef,
    Directory,
    EncounterKind,
    Site,
    Vocabulary,
)


@dataclass(frozen=True)
class SeedRun:
    """Everything fixed for one generate_bundles call (and the one calendar its patients'
    visits are placed in, in patient order)."""

    seed: int
    anchor: date
    vocab: Vocabulary
    directory: Directory
    mrn_offset: int
    calendar: Calendar = field(default_factory=Calendar)


@dataclass
class ConditionInstance:
    definition: ConditionDef
    urn: str
    clinician: Clinician
    onset: date | None = None
    recorded: datetime | None = None
    abatement: date | None = None
    visit: Visit | None = None

    def as_ref(self) -> Json:
        return ref(self.urn, self.definition.term.display)


@dataclass
class Visit:
    kind: EncounterKind
    urn: str
    number: int
    start: datetime
    end: datetime
    clinician: Clinician
    site: Site
    appointment_urn: str | None = None
    condition: ConditionInstance | None = None  # what the visit was for, if anything

    def as_ref(self) -> Json:
        return ref(self.urn)


@dataclass
class PatientContext:
    run: SeedRun
    rng: Random
    urn: str
    mrn: str
    name: str
    sex: str
    birth_date: date
    gp: Clinician
    careteam_urn: str
    chronic: list[ConditionInstance] = field(default_factory=list)
    acute: list[ConditionInstance] = field(default_factory=list)
    allergies: list[AllergenDef] = field(default_factory=list)
    visits: list[Visit] = field(default_factory=list)
    specialists: dict[str, Clinician] = field(default_factory=dict)
    baselines: dict[str, float] = field(default_factory=dict)
    entries: list[Json] = field(default_factory=list)

    @property
    def vocab(self) -> Vocabulary:
        return self.run.vocab

    @property
    def directory(self) -> Directory:
        return self.run.directory

    @property
    def anchor(self) -> date:
        return self.run.anchor

    def age_on(self, day: date) -> int:
        birth = self.birth_date
        return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))

    @property
    def age(self) -> int:
        return self.age_on(self.anchor)

    def subject(self) -> Json:
        return ref(self.urn, self.name)

    def add(self, urn: str, resource: Json) -> None:
        self.entries.append(entry(urn, resource))

    def has_condition(self, code: str) -> bool:
        return any(c.definition.term.code == code for c in self.chronic)

    def allergy_codes(self) -> set[str]:
        return {a.term.code for a in self.allergies}
