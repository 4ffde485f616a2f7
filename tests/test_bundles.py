"""Batch and transaction Bundles, including atomicity under injected failures."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import orjson
import pytest
from flask.testing import FlaskClient

from fhirhub.fhir.errors import Conflict
from fhirhub.hub import Hub
from fhirhub.storage import transactions
from fhirhub.storage.documents import RESOURCES, TRANSACTIONS, VERSION_TYPE
from tests.helpers import FHIR_JSON, assert_outcome, body, create, patient

NPI = "http://hl7.org/fhir/sid/us-npi"


def tx(*entries: dict[str, Any], kind: str = "transaction") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def post(resource: dict[str, Any], full_url: str | None = None, **request: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"], **request},
    }
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def observation(subject: str, performer: str | None = None) -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": subject},
        "valueQuantity": {
            "value": 72,
            "unit": "/min",
            "system": "http://unitsofmeasure.org",
            "code": "/min",
        },
    }
    if performer:
        obs["performer"] = [{"reference": performer}]
    return obs


def counts(hub: Hub) -> tuple[int, int, int]:
    db = hub.db
    return (
        db[RESOURCES].count_documents({"t": {"$exists": True}}),
        db[RESOURCES].count_documents({VERSION_TYPE: {"$exists": True}}),
        db[TRANSACTIONS].count_documents({}),
    )


def send(client: FlaskClient, bundle: dict[str, Any]) -> Any:
    return client.post("/fhir/", json=bundle, headers=FHIR_JSON)


def test_transaction_rewrites_uuid_and_conditional_references(client: FlaskClient) -> None:
    practitioner = {"resourceType": "Practitioner", "identifier": [{"system": NPI, "value": "99"}]}
    create(client, practitioner)
    bundle = tx(
        post(observation("urn:uuid:p1", f"Practitioner?identifier={NPI}|99")),
        post(patient(), "urn:uuid:p1"),
    )
    response = send(client, bundle)
    assert response.status_code == 200, response.get_data(as_text=True)
    result = body(response)
    assert result["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in result["entry"]]
    assert statuses == ["201 Created", "201 Created"]
    obs_location = result["entry"][0]["response"]["location"]
    patient_location = result["entry"][1]["response"]["location"]
    obs = body(client.get(f"/fhir/{obs_location.rsplit('/_history', 1)[0]}"))
    assert obs["subject"]["reference"] == patient_location.rsplit("/_history", 1)[0]
    assert obs["performer"][0]["reference"].startswith("Practitioner/")


def test_unresolvable_conditional_reference_fails_whole_transaction(
    client: FlaskClient, hub: Hub
) -> None:
    bundle = tx(
        post(patient(), "urn:uuid:p1"),
        post(observation("urn:uuid:p1", f"Practitioner?identifier={NPI}|nobody")),
    )
    assert_outcome(send(client, bundle), 412, "Bundle.entry[1]")
    assert counts(hub) == (0, 0, 0)


def test_invalid_entry_fails_whole_transaction(client: FlaskClient, hub: Hub) -> None:
    bundle = tx(post(patient(), "urn:uuid:p1"), post(patient(gender="blue")))
    assert_outcome(send(client, bundle), 400, "Bundle.entry[1]")
    assert counts(hub) == (0, 0, 0)


def test_conditional_create_inside_transaction(client: FlaskClient) -> None:
    ident = {"system": "urn:mrn", "value": "x1"}
    bundle = tx(
        post(patient(identifier=[ident]), "urn:uuid:a", ifNoneExist="identifier=urn:mrn|x1"),
        post(observation("urn:uuid:a")),
    )
    first = body(send(client, bundle))
    second = body(send(client, bundle))
    assert first["entry"][0]["response"]["status"] == "201 Created"
    assert second["entry"][0]["response"]["status"] == "200 OK"
    assert first["entry"][0]["response"]["location"] == second["entry"][0]["response"]["location"]


def test_processing_order_and_reads(client: FlaskClient) -> None:
    client.put("/fhir/Patient/old", json=patient(id="old"), headers=FHIR_JSON)
    bundle = tx(
        {"request": {"method": "GET", "url": "Patient/new"}},
        {
            "fullUrl": "Patient/new",
            "resource": patient(id="new"),
            "request": {"method": "PUT", "url": "Patient/new"},
        },
        {"request": {"method": "DELETE", "url": "Patient/old"}},
    )
    result = body(send(client, bundle))
    assert [e["response"]["status"] for e in result["entry"]] == [
        "200 OK",
        "201 Created",
        "204 No Content",
    ]
    assert result["entry"][0]["resource"]["id"] == "new"  # read happens after the writes
    assert client.get("/fhir/Patient/old").status_code == 410


def test_patch_entry(client: FlaskClient) -> None:
    client.put("/fhir/Patient/p", json=patient(id="p"), headers=FHIR_JSON)
    ops = orjson.dumps([{"op": "replace", "path": "/gender", "value": "female"}])
    binary = {
        "resourceType": "Binary",
        "contentType": "application/json-patch+json",
        "data": base64.b64encode(ops).decode(),
    }
    result = send(
        client, tx({"resource": binary, "request": {"method": "PATCH", "url": "Patient/p"}})
    )
    assert result.status_code == 200, result.get_data(as_text=True)
    assert body(client.get("/fhir/Patient/p"))["gender"] == "female"


@pytest.mark.parametrize("step", ["history", "create", "update", "commit"])
def test_injected_failure_leaves_nothing_behind(client: FlaskClient, hub: Hub, step: str) -> None:
    client.put("/fhir/Patient/keep", json=patient(id="keep"), headers=FHIR_JSON)
    before = counts(hub)
    original = body(client.get("/fhir/Patient/keep"))

    def fail(name: str) -> None:
        if name == step:
            raise RuntimeError(f"injected failure at {name}")

    hub.store.before_write = fail
    bundle = tx(
        post(patient("A"), "urn:uuid:a"),
        post(observation("urn:uuid:a")),
        {
            "resource": patient("Changed", id="keep"),
            "request": {"method": "PUT", "url": "Patient/keep"},
        },
    )
    response = send(client, bundle)
    hub.store.before_write = None
    assert response.status_code == 500
    assert counts(hub) == before
    assert body(client.get("/fhir/Patient/keep")) == original
    assert client.get("/fhir/Patient/keep/_history/2").status_code == 404
    # The restored version is searchable again (its index fields were rebuilt).
    found = body(client.get("/fhir/Patient?family=Chalmers"))
    assert [e["resource"]["id"] for e in found.get("entry", [])] == ["keep"]


def test_compensation_leaves_another_writers_document_alone(client: FlaskClient, hub: Hub) -> None:
    """A transaction whose create lost the race for an id must not delete the winner."""
    winner = {
        "_id": "Patient/race",
        "t": "Patient",
        "rid": "race",
        "v": 1,
        "ts": hub.store.clock(),
        "del": False,
        "m": "PUT",
        "res": orjson.dumps(patient("Winner", id="race")).decode(),
    }

    def other_writer_first(name: str) -> None:
        if name == "create":
            hub.db[RESOURCES].insert_one(dict(winner))

    hub.store.before_write = other_writer_first
    bundle = tx(
        {
            "resource": patient("Loser", id="race"),
            "request": {"method": "PUT", "url": "Patient/race"},
        }
    )
    response = send(client, bundle)
    hub.store.before_write = None
    assert response.status_code == 409
    assert hub.db[RESOURCES].find_one({"_id": "Patient/race"}) == winner
    assert hub.db[RESOURCES].count_documents({"rid": "race", VERSION_TYPE: {"$exists": True}}) == 0


def test_recovery_compensates_after_process_death(
    client: FlaskClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.put("/fhir/Patient/keep", json=patient(id="keep"), headers=FHIR_JSON)
    before = counts(hub)

    def die(name: str) -> None:
        if name == "commit":
            raise SystemExit("process died")

    # A dead process runs no compensation: disable it to leave the half-written state.
    monkeypatch.setattr(transactions, "compensate", lambda store, txn_id: None)
    hub.store.before_write = die
    bundle = tx(
        post(patient("A")),
        {"resource": patient("B", id="keep"), "request": {"method": "PUT", "url": "Patient/keep"}},
    )
    with pytest.raises(SystemExit):
        send(client, bundle)
    hub.store.before_write = None
    monkeypatch.undo()
    assert counts(hub) != before  # partially written, invisible to vread/history
    assert client.get("/fhir/Patient/keep/_history/2").status_code == 404

    real_clock = hub.store.clock
    hub.store.clock = lambda: real_clock() + timedelta(minutes=5)
    assert transactions.recover(hub.store) == 1
    assert counts(hub) == before
    assert body(client.get("/fhir/Patient/keep"))["name"][0]["family"] == "Chalmers"


def test_batch_entries_succeed_or_fail_independently(client: FlaskClient) -> None:
    bundle = tx(
        post(patient()),
        post(patient(gender="blue")),
        {"request": {"method": "GET", "url": "Patient/missing"}},
        {"request": {"method": "BREW", "url": "Patient"}},
        kind="batch",
    )
    result = body(send(client, bundle))
    assert result["type"] == "batch-response"
    statuses = [e["response"]["status"] for e in result["entry"]]
    assert statuses[0] == "201 Created"
    assert statuses[1:] == ["400", "404", "400"]
    assert result["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"


def put(resource: dict[str, Any]) -> dict[str, Any]:
    url = f"{resource['resourceType']}/{resource['id']}"
    return {"resource": resource, "request": {"method": "PUT", "url": url}}


def batch_of_plain_writes() -> dict[str, Any]:
    return tx(
        put(patient("One", id="b1")),
        put(patient("Two", id="b2")),
        put(patient("Blue", id="b3", gender="blue")),
        post(patient("Three")),
        {"request": {"method": "GET", "url": "Patient/b1"}},
        put(patient("Twice", id="b2")),
        {"request": {"method": "PUT", "url": "Patient/Bad$Id"}, "resource": patient()},
        kind="batch",
    )


EXPECTED_BATCH_STATUSES = [
    "201 Created",
    "201 Created",
    "400",
    "201 Created",
    "200 OK",
    "200 OK",
    "400",
]


def test_batch_plain_writes_together_fail_alone(client: FlaskClient, hub: Hub) -> None:
    result = body(send(client, batch_of_plain_writes()))
    statuses = [e["response"]["status"] for e in result["entry"]]
    assert statuses == EXPECTED_BATCH_STATUSES
    assert "gender" in str(result["entry"][2]["response"]["outcome"])
    assert body(client.get("/fhir/Patient/b2"))["name"][0]["family"] == "Twice"
    assert client.get("/fhir/Patient/b3").status_code == 404
    created = result["entry"][3]["response"]["location"].split("/_history")[0]
    assert body(client.get(f"/fhir/{created}"))["name"][0]["family"] == "Three"
    # Written as committed versions: visible in history and waiting for the notifier.
    assert body(client.get("/fhir/Patient/b1/_history"))["total"] == 1
    assert hub.db[TRANSACTIONS].count_documents({}) == 0


def test_batch_falls_back_to_one_by_one_after_a_collision(client: FlaskClient, hub: Hub) -> None:
    collided: list[str] = []

    def collide_once(name: str) -> None:
        if name == "history" and not collided:
            collided.append(name)
            raise Conflict("a concurrent writer got there first")

    hub.store.before_write = collide_once
    result = body(send(client, batch_of_plain_writes()))
    hub.store.before_write = None
    assert collided
    statuses = [e["response"]["status"] for e in result["entry"]]
    assert statuses == EXPECTED_BATCH_STATUSES
    assert body(client.get("/fhir/Patient/b2/_history"))["total"] == 2


def test_bundle_shape_errors(client: FlaskClient) -> None:
    assert_outcome(send(client, {"resourceType": "Patient"}), 400, "Bundle")
    assert_outcome(send(client, {"resourceType": "Bundle", "type": "collection"}), 400)
    bad_entry = tx({"resource": patient()})
    assert_outcome(send(client, bad_entry), 400, "request")
    dup = tx(
        {"resource": patient(id="d"), "request": {"method": "PUT", "url": "Patient/d"}},
        {"resource": patient(id="d"), "request": {"method": "PUT", "url": "Patient/d"}},
    )
    assert_outcome(send(client, dup), 400, "more than once")


def test_search_entries_in_batch_and_transaction(client: FlaskClient) -> None:
    create(client, patient())
    search = {"request": {"method": "GET", "url": "Patient?gender=male"}}
    for kind in ("batch", "transaction"):
        result = body(send(client, tx(search, kind=kind)))
        entry = result["entry"][0]
        assert entry["response"]["status"] == "200 OK"
        assert entry["resource"]["type"] == "searchset"
        assert len(entry["resource"]["entry"]) == 1
