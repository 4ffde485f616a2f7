"""Bundle-level guarantees of the seed generator: determinism, transaction shape, reference
integrity, scaling, time placement relative to the anchor, table-driven vitals/labs, files."""

from __future__ import annotations

import ast
import hashlib
import os
import re
import subprocess
import sys
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest

from fhirhub.config import PROJECT_ROOT
from fhirhub.seed import DEFAULT_PATIENTS, generate_bundles, write_bundles
from fhirhub.seed.elements import make_npi, npi_check_digit

Json = dict[str, Any]
ANCHOR = date(2025, 3, 14)
URN = re.compile(r"^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
CONDITIONAL = re.compile(r"^(?P<type>[A-Za-z]+)\?identifier=(?P<system>[^|]+)\|(?P<value>.+)$")
UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
NPI = "http://hl7.org/fhir/sid/us-npi"
DIRECTORY_TYPES = {
    "Organization",
    "Location",
    "Practitioner",
    "PractitionerRole",
    "Schedule",
    "Endpoint",
}


@cache
def bundles(
    patients: int, seed: int = 42, anchor: date = ANCHOR, per_bundle: int = 10
) -> tuple[Json, ...]:
    return tuple(
        generate_bundles(patients, seed=seed, anchor=anchor, patients_per_bundle=per_bundle)
    )


def resources(generated: tuple[Json, ...], resource_type: str | None = None) -> list[Json]:
    return [
        e["resource"]
        for b in generated
        for e in b["entry"]
        if resource_type is None or e["resource"]["resourceType"] == resource_type
    ]


def references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            yield node["reference"]
        for value in node.values():
            yield from references(value)
    elif isinstance(node, list):
        for value in node:
            yield from references(value)


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment)


def anchor_instant(anchor: date = ANCHOR) -> datetime:
    return parse(f"{anchor.isoformat()}T00:00:00-05:00")


# -- determinism ---------------------------------------------------------------------------


def test_same_arguments_give_byte_identical_output() -> None:
    first = [orjson.dumps(b) for b in generate_bundles(30, seed=5, anchor=ANCHOR)]
    second = [orjson.dumps(b) for b in generate_bundles(30, seed=5, anchor=ANCHOR)]
    assert first == second


def _digest(patients: int, seed: int) -> str:
    digest = hashlib.sha256()
    for bundle in generate_bundles(patients, seed=seed, anchor=ANCHOR):
        digest.update(orjson.dumps(bundle))
    return digest.hexdigest()


def test_output_does_not_depend_on_the_process() -> None:
    """Set iteration order changes with PYTHONHASHSEED; the output must not."""
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); from datetime import date;"
        "from tests.test_seed_bundles import _digest; print(_digest(15, 8))"
    )
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        run = subprocess.run(
            [sys.executable, "-c", script, str(PROJECT_ROOT)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        assert run.stdout.strip() == _digest(15, 8)


def test_seed_package_does_not_import_web_or_database_layers() -> None:
    for path in (PROJECT_ROOT / "fhirhub" / "seed").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] not in {"flask", "pymongo", "mongoengine"}, path


def test_different_seed_or_anchor_gives_different_output() -> None:
    base = orjson.dumps(list(bundles(10, seed=1)))
    assert orjson.dumps(list(bundles(10, seed=2))) != base
    shifted = orjson.dumps(list(bundles(10, seed=1, anchor=date(2026, 3, 14))))
    assert shifted != base
    birth_dates = {p["birthDate"][:4] for p in resources(bundles(10, seed=1), "Patient")}
    shifted_births = {
        p["birthDate"][:4]
        for p in resources(bundles(10, seed=1, anchor=date(2026, 3, 14)), "Patient")
    }
    assert birth_dates != shifted_births  # ages are kept, so birth dates move with the anchor


def test_anchor_defaults_to_today() -> None:
    assert orjson.dumps(list(generate_bundles(2))) == orjson.dumps(
        list(generate_bundles(2, anchor=date.today()))
    )


def test_patients_per_bundle_only_regroups_the_same_entries() -> None:
    tens, sevens = bundles(23), bundles(23, per_bundle=7)
    assert len(tens) == 1 + 3 and len(sevens) == 1 + 4
    assert orjson.dumps(resources(tens)) == orjson.dumps(resources(sevens))
    per_bundle = [
        sum(e["resource"]["resourceType"] == "Patient" for e in b["entry"]) for b in sevens[1:]
    ]
    assert per_bundle == [7, 7, 7, 2]


def test_invalid_arguments_fail_at_call_time() -> None:
    with pytest.raises(ValueError, match="patients"):
        generate_bundles(-1)
    with pytest.raises(ValueError, match="patients_per_bundle"):
        generate_bundles(5, patients_per_bundle=0)


# -- transaction shape and references ------------------------------------------------------


def test_transaction_bundle_shape() -> None:
    generated = bundles(DEFAULT_PATIENTS)
    assert DEFAULT_PATIENTS == 20
    full_urls: list[str] = []
    for number, bundle in enumerate(generated):
        assert set(bundle) == {"resourceType", "type", "entry"}
        assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
        for entry in bundle["entry"]:
            resource, request = entry["resource"], entry["request"]
            assert URN.match(entry["fullUrl"]), entry["fullUrl"]
            assert "id" not in resource  # the server assigns ids on POST
            assert request["method"] == "POST" and request["url"] == resource["resourceType"]
            if number == 0:
                assert resource["resourceType"] in DIRECTORY_TYPES
                system, value = request["ifNoneExist"].removeprefix("identifier=").split("|")
                assert {"system": system, "value": value} in [
                    {"system": i["system"], "value": i["value"]} for i in resource["identifier"]
                ]
            else:
                assert resource["resourceType"] not in DIRECTORY_TYPES
                assert "ifNoneExist" not in request
            full_urls.append(entry["fullUrl"])
    assert len(full_urls) == len(set(full_urls))


def test_urn_references_resolve_within_their_bundle() -> None:
    checked = 0
    for bundle in bundles(DEFAULT_PATIENTS):
        full_urls = {e["fullUrl"] for e in bundle["entry"]}
        for entry in bundle["entry"]:
            for reference in references(entry["resource"]):
                if reference.startswith("urn:uuid:"):
                    assert reference in full_urls
                    checked += 1
    assert checked > 1000


def test_conditional_references_point_at_identifiers_the_directory_creates() -> None:
    generated = bundles(DEFAULT_PATIENTS)
    created = {
        (e["resource"]["resourceType"], i["system"], i["value"])
        for e in generated[0]["entry"]
        for i in e["resource"]["identifier"]
    }
    used: Counter[str] = Counter()
    for bundle in generated[1:]:
        for entry in bundle["entry"]:
            for reference in references(entry["resource"]):
                if reference.startswith("urn:uuid:"):
                    continue
                match = CONDITIONAL.match(reference)
                assert match, f"neither urn:uuid nor conditional: {reference}"
                assert (match["type"], match["system"], match["value"]) in created, reference
                used[match["type"]] += 1
    assert set(used) == {"Organization", "Location", "Practitioner", "PractitionerRole"}


def test_npis_are_unique_and_pass_the_luhn_check() -> None:
    assert npi_check_digit("123456789") == 3  # CMS's published example NPI 1234567893
    npis = [
        i["value"]
        for r in resources((next(generate_bundles(300, anchor=ANCHOR)),))
        for i in r.get("identifier", [])
        if i["system"] == NPI
    ]
    assert len(npis) == len(set(npis)) == 4 + 30
    for npi in npis:
        assert len(npi) == 10 and npi[0] == "1"
        assert npi_check_digit(npi[:9]) == int(npi[9])
    assert len({make_npi(k, 99_999_999) for k in range(10_000)}) == 10_000


def test_endpoints_are_active_loopback_fhir_rest() -> None:
    directory = bundles(DEFAULT_PATIENTS)[0]["entry"]
    by_urn = {e["fullUrl"]: e["resource"] for e in directory}
    roles = [r for r in by_urn.values() if r["resourceType"] == "PractitionerRole"]
    assert roles
    for role in roles:
        practitioner = by_urn[role["practitioner"]["reference"]]
        npi = next(i["value"] for i in practitioner["identifier"] if i["system"] == NPI)
        assert practitioner["name"][0]["prefix"] == ["Dr."]
        (endpoint_ref,) = role["endpoint"]
        endpoint = by_urn[endpoint_ref["reference"]]
        assert endpoint["status"] == "active"
        assert endpoint["connectionType"]["code"] == "hl7-fhir-rest"
        assert endpoint["connectionType"]["system"].endswith("/endpoint-connection-type")
        assert endpoint["address"] == f"http://127.0.0.1:9/fhir-notify/{npi}"
        assert {c["system"].rsplit("/", 1)[-1] for c in role["specialty"][0]["coding"]} == {
            "sct",
            "provider-taxonomy",
        }


# -- scaling -------------------------------------------------------------------------------


def test_counts_scale_with_patients() -> None:
    small = Counter(r["resourceType"] for r in resources(bundles(20)))
    large = Counter(r["resourceType"] for r in resources(bundles(100)))
    assert small["Patient"] == small["CareTeam"] == 20
    assert large["Patient"] == large["CareTeam"] == 100
    assert small["Practitioner"] == small["PractitionerRole"] == small["Endpoint"] == 5
    assert large["Practitioner"] == large["PractitionerRole"] == large["Endpoint"] == 10
    assert small["Organization"] == small["Location"] == 4  # hospital + 3 clinics
    for counts, n in ((small, 20), (large, 100)):
        assert 2 * n <= counts["Encounter"] <= 6 * n
        assert counts["Appointment"] >= 2 * n  # at least one past and one future each
        assert counts["Observation"] > 10 * n
        assert (
            counts["Condition"] > 0 and counts["MedicationRequest"] > 0 and counts["CarePlan"] > 0
        )
    assert large["Observation"] > 3 * small["Observation"]
    empty = bundles(0)
    assert (
        len(empty) == 1
        and Counter(r["resourceType"] for r in resources(empty))["Practitioner"] == 5
    )


def test_generation_streams_lazily() -> None:
    stream = generate_bundles(10_000, anchor=ANCHOR)
    assert isinstance(stream, Iterator)
    directory = next(stream)
    assert sum(e["resource"]["resourceType"] == "Practitioner" for e in directory["entry"]) == 1000
    first = next(stream)
    assert sum(e["resource"]["resourceType"] == "Patient" for e in first["entry"]) == 10


def _peak_bytes(patients: int) -> int:
    tracemalloc.start()
    try:
        for _ in generate_bundles(patients, anchor=ANCHOR):
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_patient_count() -> None:
    _peak_bytes(10)  # load the vocabulary outside the measurement
    small, large = _peak_bytes(40), _peak_bytes(240)
    assert large < small * 1.5, (small, large)


# -- time placement ------------------------------------------------------------------------


def test_every_patient_has_past_and_future_appointments() -> None:
    generated = bundles(DEFAULT_PATIENTS)
    anchor = anchor_instant()
    by_patient: dict[str, list[Json]] = {}
    for appointment in resources(generated, "Appointment"):
        # The patient is the one participant inside the bundle; clinician and location are
        # conditional references to the directory.
        (patient,) = [
            p["actor"]["reference"]
            for p in appointment["participant"]
            if p["actor"]["reference"].startswith("urn:uuid:")
        ]
        by_patient.setdefault(patient, []).append(appointment)
    assert len(by_patient) == DEFAULT_PATIENTS
    for appointments in by_patient.values():
        past = [a for a in appointments if parse(a["end"]) < anchor]
        future = [a for a in appointments if parse(a["start"]) > anchor]
        assert past and future
        assert all(a["status"] == "fulfilled" for a in past)
        assert all(a["status"] == "booked" for a in future)
        for a in appointments:
            assert (
                a["minutesDuration"] == (parse(a["end"]) - parse(a["start"])).total_seconds() // 60
            )
            assert parse(a["created"]) < parse(a["start"])
            assert {p["status"] for p in a["participant"]} == {"accepted"}


def test_clinical_history_lies_before_the_anchor() -> None:
    generated = bundles(60, seed=9)
    anchor = anchor_instant()
    for bundle in generated[1:]:
        encounters = {
            e["fullUrl"]: e["resource"]
            for e in bundle["entry"]
            if e["resource"]["resourceType"] == "Encounter"
        }
        for encounter in encounters.values():
            assert encounter["status"] == "finished"
            assert parse(encounter["period"]["start"]) < parse(encounter["period"]["end"]) < anchor
        for entry in bundle["entry"]:
            resource = entry["resource"]
            if resource["resourceType"] == "Observation":
                period = encounters[resource["encounter"]["reference"]]["period"]
                effective = parse(resource["effectiveDateTime"])
                assert parse(period["start"]) <= effective <= parse(period["end"])
                assert effective <= parse(resource["issued"]) < anchor
            if resource["resourceType"] == "Appointment" and resource["status"] == "fulfilled":
                assert any(
                    e.get("appointment") == [{"reference": entry["fullUrl"]}]
                    and e["period"]["start"] == resource["start"]
                    for e in encounters.values()
                )


# -- vocabulary use ------------------------------------------------------------------------


def _table(name: str) -> Any:
    return orjson.loads((PROJECT_ROOT / "seed_data" / name).read_bytes())


def test_vital_signs_use_loinc_and_ucum_from_the_table() -> None:
    table = {row["code"]: row for row in _table("loinc_vitals.json")["vitals"]}
    seen: set[str] = set()
    for obs in resources(bundles(DEFAULT_PATIENTS), "Observation"):
        if obs["category"][0]["coding"][0]["code"] != "vital-signs":
            continue
        coding = obs["code"]["coding"][0]
        assert coding["system"] == LOINC and coding["code"] in table
        row = table[coding["code"]]
        seen.add(row["code"])
        assert obs["meta"]["profile"] == [row["profile"]]
        assert obs["category"][0]["coding"][0]["system"] == (
            "http://terminology.hl7.org/CodeSystem/observation-category"
        )
        if "components" in row:
            assert "valueQuantity" not in obs
            expected = {(c["code"], c["unit"]) for c in row["components"]}
            got = {
                (c["code"]["coding"][0]["code"], c["valueQuantity"]["code"])
                for c in obs["component"]
            }
            assert got == expected
            assert all(c["valueQuantity"]["system"] == UCUM for c in obs["component"])
        else:
            quantity = obs["valueQuantity"]
            assert quantity["system"] == UCUM and quantity["code"] == row["unit"]
            assert isinstance(quantity["value"], int | float)
    assert seen == set(table)


def test_labs_carry_reference_ranges_and_flag_out_of_range_values() -> None:
    table = {row["code"]: row for row in _table("loinc_labs.json")["labs"]}
    flags: Counter[str] = Counter()
    patients = {
        e["fullUrl"]: e["resource"]["gender"]
        for b in bundles(100)
        for e in b["entry"]
        if e["resource"]["resourceType"] == "Patient"
    }
    for obs in resources(bundles(100), "Observation"):
        if obs["category"][0]["coding"][0]["code"] != "laboratory":
            continue
        row = table[obs["code"]["coding"][0]["code"]]
        quantity = obs["valueQuantity"]
        assert quantity["system"] == UCUM and quantity["code"] == row["unit"]
        low, high = (row.get("range_by_sex") or {}).get(
            patients[obs["subject"]["reference"]], row.get("range")
        )
        (reference,) = obs["referenceRange"]
        assert (
            reference.get("low", {}).get("value") == low
            and reference.get("high", {}).get("value") == high
        )
        expected = "H" if high is not None and quantity["value"] > high else None
        expected = expected or ("L" if low is not None and quantity["value"] < low else None)
        flag = obs.get("interpretation", [{"coding": [{"code": None}]}])[0]["coding"][0]["code"]
        assert flag == expected
        flags[str(flag)] += 1
    assert flags["H"] > 0 and flags["L"] > 0 and flags["None"] > flags["H"]


# -- files ---------------------------------------------------------------------------------


def test_write_bundles_numbers_files_and_replaces_stale_ones(tmp_path: Path) -> None:
    (tmp_path / "0099-patients.json").write_text("stale")
    (tmp_path / "notes.txt").write_text("keep me")
    count = write_bundles(tmp_path, 25, 3, ANCHOR)
    names = sorted(p.name for p in tmp_path.glob("*.json"))
    assert count == 4
    assert names == [
        "0000-directory.json",
        "0001-patients.json",
        "0002-patients.json",
        "0003-patients.json",
    ]
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    written = [orjson.loads((tmp_path / name).read_bytes()) for name in names]
    assert written == list(bundles(25, seed=3))
    again = tmp_path / "again"
    write_bundles(again, 25, 3, ANCHOR)
    assert all((again / n).read_bytes() == (tmp_path / n).read_bytes() for n in names)
