"""`fhirhub reindex` works in bounded batches and resumes a stopped run where it got to
(storage/reindexing.py); every document of an older layout ends up found by search."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from fhirhub.hub import Hub
from fhirhub.storage import reindexing
from fhirhub.storage.documents import STORED_INDEX_FIELDS, decode_index, index_fields
from fhirhub.storage.reindex_state import MARKER, ProgressPrinter, Report
from fhirhub.storage.search_stats import STATS
from tests.helpers import FHIR_JSON, body

PATIENTS = 7


class Stopped(Exception):
    pass


def legacy_patients(hub: Hub, client: FlaskClient) -> list[str]:
    """Patients stored the way an earlier fhirhub did: index as s_* fields, no search keys,
    versions without history keys; search cannot find them."""
    ids = [f"old{i}" for i in range(PATIENTS)]
    resources = hub.db["resources"]
    for rid in ids:
        resource = {"resourceType": "Patient", "id": rid, "name": [{"family": "Legacy"}]}
        assert client.put(f"/fhir/Patient/{rid}", json=resource, headers=FHIR_JSON).status_code
        current = resources.find_one({"_id": f"Patient/{rid}"})
        assert current is not None
        legacy = {k: v for k, v in current.items() if k not in STORED_INDEX_FIELDS}
        legacy.update(index_fields(decode_index(current["ix"])))
        resources.replace_one({"_id": current["_id"]}, legacy)
        resources.update_one({"_id": f"Patient/{rid}/1"}, {"$unset": {"hk": ""}})
    return ids


def family(client: FlaskClient) -> set[str]:
    page = body(client.get("/fhir/Patient?family=legacy&_count=100"))
    return {e["resource"]["id"] for e in page.get("entry", [])}


def test_a_stopped_reindex_resumes_after_its_last_batch(
    indexed_hub: Hub, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = legacy_patients(indexed_hub, client)
    assert family(client) == set()
    monkeypatch.setattr(reindexing, "REINDEX_BATCH", 3)
    first: list[Report] = []

    def stop_after_two_batches(report: Report) -> None:
        first.append(report)
        if len(first) == 2:
            raise Stopped

    with pytest.raises(Stopped):
        indexed_hub.store.reindex(
            None, indexed_hub.extractor.extract, types=["Patient"], progress=stop_after_two_batches
        )
    assert [(r.phase, r.done, r.total) for r in first] == [
        ("resources", 3, PATIENTS),
        ("resources", 6, PATIENTS),
    ]
    marker = indexed_hub.db[STATS].find_one({"_id": MARKER})
    assert marker is not None
    assert marker["at"] == "resources:Patient" and marker["after"] == f"Patient/{ids[5]}"
    assert family(client) == set(ids[:6])  # what the two batches did is in place

    resumed: list[Report] = []
    changed = indexed_hub.store.reindex(
        None, indexed_hub.extractor.extract, types=["Patient"], progress=resumed.append
    )
    # Only the last patient is left of the current documents, then the 7 unkeyed versions.
    assert [(r.phase, r.done) for r in resumed] == [
        ("resources", 7),
        ("versions", 3),
        ("versions", 6),
        ("versions", 7),
    ]
    assert changed == PATIENTS + PATIENTS  # the run's total includes the stopped part
    assert family(client) == set(ids)
    assert indexed_hub.db[STATS].find_one({"_id": MARKER}) is None
    history = body(client.get("/fhir/Patient/_history"))
    assert {e["resource"]["id"] for e in history["entry"]} == set(ids)


def test_restart_and_other_scopes_start_over(indexed_hub: Hub, client: FlaskClient) -> None:
    legacy_patients(indexed_hub, client)
    stats = indexed_hub.db[STATS]
    stale = {"scope": ["Observation"], "done": [], "at": "resources:Observation"}
    stats.replace_one({"_id": MARKER}, {**stale, "after": "Observation/zzz"}, upsert=True)
    reports: list[Report] = []
    indexed_hub.store.reindex("Patient", indexed_hub.extractor.extract, progress=reports.append)
    assert reports[0].done == PATIENTS  # nothing skipped: another scope's record is ignored
    assert len(family(client)) == PATIENTS
    # A run over the same scope with --restart ignores the record too.
    stats.replace_one({"_id": MARKER}, {**stale, "scope": ["Patient"]}, upsert=True)
    again: list[Report] = []
    changed = indexed_hub.store.reindex(
        "Patient", indexed_hub.extractor.extract, progress=again.append, restart=True
    )
    assert changed == 0  # all current already
    assert [(r.phase, r.done) for r in again] == [("resources", PATIENTS), ("versions", PATIENTS)]


def test_progress_lines_name_the_type_and_the_rate() -> None:
    lines: list[str] = []
    printer = ProgressPrinter(lines.append, every_s=3600)
    printer(Report("resources", "Observation", 200, 1000, 200))  # within the interval: quiet
    printer(Report("resources", "Observation", 1000, 1000, 900))
    printer(Report("versions", "Observation", 1000, 1000, 1900))
    assert len(lines) == 2
    assert lines[0].startswith("resources Observation: 1,000/1,000; 900 changed so far; ")
    assert "2,000 documents in" in printer.summary() and "/s" in lines[1]
