"""Assembles the directory and patient records into FHIR R4 transaction Bundles."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from random import Random

import orjson

from fhirhub.seed.calendar import Calendar, holidays_between
from fhirhub.seed.context import SeedRun
from fhirhub.seed.directory import build_directory
from fhirhub.seed.elements import Json
from fhirhub.seed.patients import patient_entries
from fhirhub.seed.vocabulary import load_vocabulary

DEFAULT_PATIENTS = 20  # the small default set loaded into an empty DB by `make run`
PATIENTS_PER_BUNDLE = 10
BUNDLE_FILE = re.compile(r"^\d{4,}-(directory|patients)\.json$")


def transaction(entries: list[Json]) -> Json:
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def generate_bundles(
    patients: int,
    seed: int = 42,
    anchor: date | None = None,
    patients_per_bundle: int = 10,
) -> Iterator[Json]:
    """Yields FHIR R4 transaction Bundles: first the directory bundle (Organizations,
    Locations, Endpoints, Practitioners, PractitionerRoles, Schedules), then patient bundles.
    Same (patients, seed, anchor) -> byte-identical output. anchor defaults to date.today();
    past/future dates are relative to it. Each patient's record depends only on (seed, anchor,
    patient number, the directory and the office visits of the patients before it, which
    share one calendar), not on patients_per_bundle, which only regroups the same entries."""
    if patients < 0:
        raise ValueError(f"patients must be >= 0, got {patients}")
    if patients_per_bundle < 1:
        raise ValueError(f"patients_per_bundle must be >= 1, got {patients_per_bundle}")
    # Arguments are checked here, not inside the generator, so errors surface at the call.
    return _bundles(patients, seed, anchor or date.today(), patients_per_bundle)


def _bundles(patients: int, seed: int, anchor: date, patients_per_bundle: int) -> Iterator[Json]:
    vocab = load_vocabulary()
    closed = closed_days(anchor, vocab.history_days)
    directory = build_directory(patients, seed, vocab, anchor, closed)
    yield transaction(list(directory.entries))
    run = SeedRun(
        seed=seed,
        anchor=anchor,
        vocab=vocab,
        directory=directory,
        mrn_offset=Random(f"fhirhub-seed:{seed}:mrn").randrange(100_000_000),
        calendar=Calendar(day for day, _ in closed),
    )
    for first in range(0, patients, patients_per_bundle):
        entries: list[Json] = []
        for index in range(first, min(patients, first + patients_per_bundle)):
            entries += patient_entries(run, index)
        yield transaction(entries)


def closed_days(anchor: date, history_days: int) -> list[tuple[date, str]]:
    """Holidays the clinics are closed on, over the history window and a year ahead."""
    return holidays_between(anchor - timedelta(days=history_days + 7), anchor + timedelta(days=400))


def bundle_file_name(number: int, width: int) -> str:
    kind = "directory" if number == 0 else "patients"
    return f"{number:0{width}d}-{kind}.json"


def write_bundles(out_dir: Path, patients: int, seed: int, anchor: date | None) -> int:
    """Writes 0000-directory.json, 0001-patients.json, ... (load them in name order) and returns
    the number of files. Numbered bundle files left from an earlier, larger run are removed so
    the directory never mixes two runs."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.iterdir():
        if BUNDLE_FILE.match(stale.name):
            stale.unlink()
    total = 1 + -(-patients // PATIENTS_PER_BUNDLE)
    width = max(4, len(str(total - 1)))
    count = 0
    for number, bundle in enumerate(generate_bundles(patients, seed, anchor)):
        (out_dir / bundle_file_name(number, width)).write_bytes(orjson.dumps(bundle))
        count += 1
    return count
