"""Conditional create, update and delete under 16 parallel requests (through the Flask API,
one test client per thread, against the real database): never a duplicate; and what
happens to a claim whose holder died (storage/conditional_claims.py)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from fhirhub.fhir.errors import Conflict
from fhirhub.hub import Hub
from fhirhub.storage.conditional_claims import CLAIMS, HOLD_LIMIT, STALE_AFTER
from fhirhub.storage.documents import RESOURCES, VERSION_TYPE, with_index
from tests.helpers import FHIR_JSON, assert_outcome, body, patient

THREADS = 16
SYSTEM = "urn:race"


def in_parallel(app: Flask, request: Callable[[Any, int], TestResponse]) -> list[TestResponse]:
    """`request(client, n)` from THREADS threads at once (each with its own test client)."""
    barrier = threading.Barrier(THREADS)
    results: list[TestResponse | BaseException | None] = [None] * THREADS

    def run(n: int) -> None:
        client = app.test_client()
        barrier.wait()
        try:
            results[n] = request(client, n)
        except BaseException as error:  # surfaced below, in the test's thread
            results[n] = error

    threads = [threading.Thread(target=run, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [r for r in results if isinstance(r, TestResponse)]


def statuses(responses: list[TestResponse]) -> Counter[int]:
    return Counter(r.status_code for r in responses)


def with_identifier(hub: Hub, value: str) -> list[dict[str, Any]]:
    """Every stored current Patient with the identifier, read raw (not through a search)."""
    docs = [with_index(d) for d in hub.db[RESOURCES].find({"t": "Patient"})]
    return [d for d in docs if f"{SYSTEM}|{value}" in d.get("s_identifier", [])]


def tagged(value: str, n: int = 0) -> dict[str, Any]:
    return patient(f"Racer{n}", identifier=[{"system": SYSTEM, "value": value}])


def test_parallel_conditional_creates_make_one_resource(app: Flask, hub: Hub) -> None:
    headers = {**FHIR_JSON, "If-None-Exist": f"identifier={SYSTEM}|c1"}
    responses = in_parallel(
        app, lambda c, n: c.post("/fhir/Patient", json=tagged("c1", n), headers=headers)
    )
    assert statuses(responses) == {201: 1, 200: THREADS - 1}
    assert len(with_identifier(hub, "c1")) == 1
    assert len({body(r)["id"] for r in responses}) == 1  # every answer names the one resource
    assert hub.db[CLAIMS].count_documents({}) == 0  # every claim released


def test_criteria_in_any_order_or_encoding_share_one_claim(app: Flask, hub: Hub) -> None:
    forms = [
        f"identifier={SYSTEM}|c2&gender=male",
        "gender=male&identifier=urn%3Arace%7Cc2",
        f"Patient?gender=male&identifier={SYSTEM}|c2",
    ]

    def create(client: Any, n: int) -> TestResponse:
        headers = {**FHIR_JSON, "If-None-Exist": forms[n % len(forms)]}
        return client.post("/fhir/Patient", json=tagged("c2", n), headers=headers)

    assert statuses(in_parallel(app, create)) == {201: 1, 200: THREADS - 1}
    assert len(with_identifier(hub, "c2")) == 1


def test_parallel_conditional_updates_make_one_resource(app: Flask, hub: Hub) -> None:
    url = f"/fhir/Patient?identifier={SYSTEM}|u1"
    responses = in_parallel(app, lambda c, n: c.put(url, json=tagged("u1", n), headers=FHIR_JSON))
    assert statuses(responses) == {201: 1, 200: THREADS - 1}
    [current] = with_identifier(hub, "u1")
    assert current["v"] == THREADS  # one create and 15 updates, none lost
    versions = hub.db[RESOURCES].count_documents({VERSION_TYPE: "Patient", "rid": current["rid"]})
    assert versions == THREADS


def test_parallel_conditional_deletes_delete_once(app: Flask, hub: Hub) -> None:
    created = app.test_client().post("/fhir/Patient", json=tagged("d1"), headers=FHIR_JSON)
    rid = body(created)["id"]
    url = f"/fhir/Patient?identifier={SYSTEM}|d1"
    responses = in_parallel(app, lambda c, n: c.delete(url))
    assert statuses(responses) == {204: THREADS}
    kinds = [d["m"] for d in hub.db[RESOURCES].find({VERSION_TYPE: "Patient", "rid": rid})]
    assert sorted(kinds) == ["DELETE", "POST"]


def test_create_update_and_delete_on_the_same_criteria_serialise(app: Flask, hub: Hub) -> None:
    """Mixed conditional writes on one criteria never leave two matching resources."""
    criteria = f"identifier={SYSTEM}|m1"

    def mixed(client: Any, n: int) -> TestResponse:
        if n % 3 == 0:
            return client.delete(f"/fhir/Patient?{criteria}")
        if n % 3 == 1:
            return client.put(f"/fhir/Patient?{criteria}", json=tagged("m1", n), headers=FHIR_JSON)
        headers = {**FHIR_JSON, "If-None-Exist": criteria}
        return client.post("/fhir/Patient", json=tagged("m1", n), headers=headers)

    responses = in_parallel(app, mixed)
    assert all(r.status_code in (200, 201, 204) for r in responses), statuses(responses)
    live = [d for d in with_identifier(hub, "m1") if not d["del"]]
    assert len(live) <= 1


def _bundle(kind: str, n: int, value: str) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [
            {
                "fullUrl": "urn:uuid:0c3ee5d4-8a11-4f1e-9e0a-000000000001",
                "resource": tagged(value, n),
                "request": {
                    "method": "POST",
                    "url": "Patient",
                    "ifNoneExist": f"identifier={SYSTEM}|{value}",
                },
            },
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": f"reading {n}"},
                    "subject": {
                        "reference": "urn:uuid:0c3ee5d4-8a11-4f1e-9e0a-000000000001"
                        if kind == "transaction"
                        else f"Patient?identifier={SYSTEM}|{value}"
                    },
                },
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }


def test_parallel_transactions_with_if_none_exist(app: Flask, hub: Hub) -> None:
    responses = in_parallel(
        app, lambda c, n: c.post("/fhir", json=_bundle("transaction", n, "t1"), headers=FHIR_JSON)
    )
    assert statuses(responses) == {200: THREADS}
    [created] = with_identifier(hub, "t1")
    first = Counter(body(r)["entry"][0]["response"]["status"] for r in responses)
    assert first == {"201 Created": 1, "200 OK": THREADS - 1}
    subjects = {
        o["s_subject"][0] if isinstance(o["s_subject"], list) else o["s_subject"]
        for o in map(with_index, hub.db[RESOURCES].find({"t": "Observation"}))
    }
    assert len(subjects) == 1 and created["rid"] in next(iter(subjects))


def test_parallel_batches_with_if_none_exist(app: Flask, hub: Hub) -> None:
    def batch(client: Any, n: int) -> TestResponse:
        only_patient = _bundle("batch", n, "b1")
        only_patient["entry"] = only_patient["entry"][:1]
        return client.post("/fhir", json=only_patient, headers=FHIR_JSON)

    responses = in_parallel(app, batch)
    entries = Counter(body(r)["entry"][0]["response"]["status"] for r in responses)
    assert entries == {"201 Created": 1, "200 OK": THREADS - 1}
    assert len(with_identifier(hub, "b1")) == 1


def test_same_if_none_exist_twice_in_one_transaction_creates_once(app: Flask, hub: Hub) -> None:
    bundle = _bundle("transaction", 0, "t2")
    second = {**bundle["entry"][0], "fullUrl": "urn:uuid:0c3ee5d4-8a11-4f1e-9e0a-000000000002"}
    bundle["entry"].append(second)
    result = body(app.test_client().post("/fhir", json=bundle, headers=FHIR_JSON))
    [created] = with_identifier(hub, "t2")
    locations = {e["response"]["location"].split("/_history")[0] for e in result["entry"][::2]}
    assert locations == {f"Patient/{created['rid']}"}


# -- claims whose holder died, or is still writing ---------------------------------------------


def _claim_of(hub: Hub, criteria: str) -> str:
    import hashlib

    from fhirhub.storage.conditional_claims import normalised

    return hashlib.sha256(normalised("Patient", criteria).encode()).hexdigest()


def test_claim_of_a_dead_process_is_taken_over_once_stale(app: Flask, hub: Hub) -> None:
    criteria = f"identifier={SYSTEM}|dead"
    key = _claim_of(hub, criteria)
    taken = hub.store.clock() - STALE_AFTER - timedelta(seconds=1)
    hub.db[CLAIMS].insert_one({"_id": key, "criteria": "x", "token": "dead", "taken": taken})
    headers = {**FHIR_JSON, "If-None-Exist": criteria}
    response = app.test_client().post("/fhir/Patient", json=tagged("dead"), headers=headers)
    assert response.status_code == 201
    left = list(hub.db[CLAIMS].find({}))
    assert [d["_id"] for d in left] == [f"{key}!dead"]  # only the breaker that won the takeover


def test_live_claim_makes_others_wait_then_409(app: Flask, hub: Hub) -> None:
    criteria = f"identifier={SYSTEM}|busy"
    key = _claim_of(hub, criteria)
    hub.db[CLAIMS].insert_one(
        {"_id": key, "criteria": "x", "token": "busy", "taken": hub.store.clock()}
    )
    hub.resources.claims.wait_seconds = 0.3
    client = app.test_client()
    headers = {**FHIR_JSON, "If-None-Exist": criteria}
    refused = client.post("/fhir/Patient", json=tagged("busy"), headers=headers)
    assert_outcome(refused, 409, "in progress")
    assert refused.headers["Retry-After"] == "1"
    assert with_identifier(hub, "busy") == []
    hub.db[CLAIMS].delete_one({"_id": key})  # the holder finishes
    assert client.post("/fhir/Patient", json=tagged("busy"), headers=headers).status_code == 201


def test_holder_past_the_hold_limit_does_not_write(hub: Hub) -> None:
    claims = hub.resources.claims
    real = claims.clock
    with claims.holding([("Patient", "identifier=x")]) as held:
        claims.check(held)
        claims.clock = lambda: real() + HOLD_LIMIT
        with pytest.raises(Conflict, match="too long"):
            claims.check(held)
    claims.clock = real
    assert hub.db[CLAIMS].count_documents({}) == 0
