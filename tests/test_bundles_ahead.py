"""Large transactions: the versions of new resources go in while later entries are still
checked (StagedTransaction.stage_ahead); every failure still leaves nothing behind."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask.testing import FlaskClient

from fhirhub.hub import Hub
from fhirhub.service.transaction import AHEAD_CHUNK
from fhirhub.storage import transactions
from fhirhub.storage.documents import RESOURCES, TRANSACTIONS, VERSION_TYPE
from tests.helpers import FHIR_JSON, body, patient
from tests.test_bundles import counts, observation, post, send, tx

SIZE = 2 * AHEAD_CHUNK + 50  # two chunks staged ahead, the rest with the commit


def big_bundle(bad_last: bool = False) -> dict[str, object]:
    entries = [post(patient("Ahead"), "urn:uuid:p0")]
    entries += [post(observation("urn:uuid:p0")) for _ in range(SIZE - 1)]
    if bad_last:
        entries[-1]["resource"]["status"] = "not-a-status"  # type: ignore[index]
    return tx(*entries)


def versions_of_transactions(hub: Hub) -> int:
    return hub.db[RESOURCES].count_documents(
        {"txn": {"$exists": True}, VERSION_TYPE: {"$exists": True}, "pub": 0}
    )


def test_large_transaction_commits_every_entry(client: FlaskClient, hub: Hub) -> None:
    response = send(client, big_bundle())
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    entries = body(response)["entry"]
    assert [e["response"]["status"] for e in entries] == ["201 Created"] * SIZE
    stamps = {e["response"]["lastModified"] for e in entries}
    assert len(stamps) == 1  # one moment for the whole transaction
    last = entries[-1]["response"]["location"]
    assert client.get(f"/fhir/{last}").status_code == 200  # the staged-ahead version (vread)
    found = body(client.get("/fhir/Observation?subject:Patient.family=Ahead&_total=accurate"))
    assert found["total"] == SIZE - 1
    assert hub.db[TRANSACTIONS].count_documents({}) == 0


def test_invalid_entry_after_staged_chunks_leaves_nothing(client: FlaskClient, hub: Hub) -> None:
    before = counts(hub)
    response = send(client, big_bundle(bad_last=True))
    assert response.status_code == 400
    assert f"entry[{SIZE - 1}]" in response.get_data(as_text=True)
    assert counts(hub) == before
    assert versions_of_transactions(hub) == 0


@pytest.mark.parametrize("step", ["ahead", "create", "commit"])
def test_injected_failure_with_staged_ahead_versions(
    client: FlaskClient, hub: Hub, step: str
) -> None:
    client.put("/fhir/Patient/keep", json=patient(id="keep"), headers=FHIR_JSON)
    before = counts(hub)
    calls: list[str] = []

    def fail(name: str) -> None:
        calls.append(name)
        if name == step and (step != "ahead" or calls.count("ahead") == 2):
            raise RuntimeError(f"injected failure at {name}")  # the second chunk, for "ahead"

    hub.store.before_write = fail
    bundle = big_bundle()
    bundle["entry"].append(  # type: ignore[attr-defined]
        {
            "resource": patient("Changed", id="keep"),
            "request": {"method": "PUT", "url": "Patient/keep"},
        }
    )
    response = send(client, bundle)
    hub.store.before_write = None
    assert response.status_code == 500
    assert calls.count("ahead") == 2
    assert counts(hub) == before
    assert body(client.get("/fhir/Patient/keep"))["name"][0]["family"] == "Chalmers"


def test_recovery_removes_staged_ahead_versions_of_a_dead_process(
    client: FlaskClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = counts(hub)
    history_before = body(client.get("/fhir/Observation/_history"))["total"]

    def die(name: str) -> None:
        if name == "create":
            raise SystemExit("process died")

    monkeypatch.setattr(transactions, "compensate", lambda store, txn_id: None)
    hub.store.before_write = die
    with pytest.raises(SystemExit):
        send(client, big_bundle())
    hub.store.before_write = None
    monkeypatch.undo()
    assert versions_of_transactions(hub) >= 2 * AHEAD_CHUNK  # left behind, still invisible
    assert body(client.get("/fhir/Observation/_history"))["total"] == history_before

    real_clock = hub.store.clock
    hub.store.clock = lambda: real_clock() + timedelta(minutes=5)
    assert transactions.recover(hub.store) == 1
    hub.store.clock = real_clock
    assert counts(hub) == before
