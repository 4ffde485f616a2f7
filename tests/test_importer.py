"""`fhirhub import` core: Synthea load order and conditional references, NDJSON, resuming."""

from __future__ import annotations

from pathlib import Path

import orjson

from fhirhub.fhir.references import iter_references
from fhirhub.hub import Hub
from fhirhub.importer.runner import Importer
from fhirhub.importer.sources import discover
from fhirhub.importer.state import ImportState
from fhirhub.service.bundles import BundleService
from fhirhub.storage.documents import RESOURCES, decode_resource
from tests.helpers import corpus_dir

HIV = corpus_dir() / "synthea-r4" / "google-fhir-data-pipes-synthea-hiv"
PATIENT_FILE = "Cecelia952_Romaguera67_f1731e33-dc55-4ee8-72d7-cece2e49bedd.json"


def importer(hub: Hub, state: ImportState | None) -> Importer:
    return Importer(BundleService(hub.resources, hub.settings.fhir_base), state)


def _directory_subset(name: str, wanted: set[str]) -> dict[str, object]:
    """The directory bundle trimmed to what one patient references (4,764 entries -> ~10),
    keeping its shape: a batch of POSTs with ifNoneExist on the identifier."""
    bundle = orjson.loads((HIV / name).read_bytes())
    bundle["entry"] = [
        e
        for e in bundle["entry"]
        if f"{e['request']['url']}?{e['request'].get('ifNoneExist', '')}" in wanted
    ]
    return bundle


def test_synthea_with_shared_directory_bundles(indexed_hub: Hub, tmp_path: Path) -> None:
    hub = indexed_hub
    patient_bundle = (HIV / PATIENT_FILE).read_bytes()
    wanted = {ref for ref in iter_references(orjson.loads(patient_bundle)) if "?" in ref}
    assert wanted, "the patient bundle uses conditional references"
    (tmp_path / PATIENT_FILE).write_bytes(patient_bundle)
    for name in (
        "hospitalInformation1633536936158.json",
        "practitionerInformation1633536936158.json",
    ):
        (tmp_path / name).write_bytes(orjson.dumps(_directory_subset(name, wanted)))
    files = discover([tmp_path])
    assert files[0].name.startswith("hospitalInformation")
    assert files[1].name.startswith("practitionerInformation")
    state = ImportState(tmp_path / "state.json")
    results = [importer(hub, state).import_file(f) for f in files]
    assert [r.error for r in results] == [None, None, None]
    expected = sum(len(orjson.loads((tmp_path / f.name).read_bytes())["entry"]) for f in files)
    assert sum(r.loaded for r in results) == expected
    assert hub.db[RESOURCES].count_documents({"t": {"$exists": True}}) == expected
    patient = hub.db[RESOURCES].find_one({"t": "Encounter"})
    assert patient is not None
    provider = (decode_resource(patient["res"]) or {})["serviceProvider"]["reference"]
    assert provider.startswith("Organization/") and "?" not in provider

    again = [importer(hub, ImportState(tmp_path / "state.json")).import_file(f) for f in files]
    assert all(r.skipped for r in again)
    assert hub.db[RESOURCES].count_documents({"t": {"$exists": True}}) == expected


def test_ndjson_bad_lines_and_resume(hub: Hub, tmp_path: Path) -> None:
    lines = [
        {"resourceType": "Patient", "id": "n1", "gender": "male"},
        {"resourceType": "Patient", "id": "n2", "gender": "blue"},
        {"resourceType": "Organization", "id": "o1", "name": "Acme"},
    ]
    path = tmp_path / "data.ndjson"
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n")
    state = ImportState(tmp_path / "state.json")
    result = importer(hub, state).import_file(path)
    assert (result.loaded, result.rejected, result.error) == (2, 1, None)
    assert any("gender" in reason for reason in result.reasons)
    assert state.done(path)


def test_file_level_errors_do_not_stop_the_import(hub: Hub, tmp_path: Path) -> None:
    (tmp_path / "a-broken.json").write_text("{not json")
    (tmp_path / "b-good.json").write_bytes(
        orjson.dumps({"resourceType": "Patient", "id": "g1", "gender": "female"})
    )
    files = discover([tmp_path])
    results = [importer(hub, None).import_file(f) for f in files]
    assert results[0].error and "malformed JSON" in results[0].error
    assert results[1].loaded == 1
