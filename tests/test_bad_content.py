"""Content the database or an encoder cannot take (NUL, lone surrogates, numbers beyond 64
bits or beyond a double): a 400 OperationOutcome on every write path, nothing partially
written; and a write the database refuses after its first insert leaves nothing behind."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import orjson
import pytest
from flask.testing import FlaskClient
from pymongo.errors import PyMongoError

from fhirhub.fhir.search.extract import KEYS
from fhirhub.fhir.search.keys import STRING_KEYS
from fhirhub.importer.runner import Importer
from fhirhub.service.bundles import BundleService
from fhirhub.storage.documents import RESOURCES, VERSION_TYPE, resource_key
from tests.helpers import FHIR_JSON, assert_outcome, body, create, patient

# Spliced into a resource as the value of Patient.name[0].family (raw JSON text).
BAD_VALUES = [
    pytest.param(b'"a\\u0000b"', "U+0000", id="nul"),
    pytest.param(b'"a\\u0001b"', "U+0001", id="control"),
    pytest.param(b'"a\\ud800b"', "surrogate", id="lone-surrogate"),
    pytest.param(b"9" * 5000, "out of range", id="5000-digits"),
    pytest.param(b"123456789012345678901234567890", "out of range", id="beyond-64-bits"),
    pytest.param(b"1e400", "out of range", id="1e400"),
    pytest.param(b"-1e400", "out of range", id="minus-1e400"),
    pytest.param(b"NaN", "not valid JSON", id="nan"),
    pytest.param(b"-Infinity", "not valid JSON", id="infinity"),
]


def _family(value: bytes) -> bytes:
    return b'{"resourceType":"Patient","name":[{"family":' + value + b"}]}"


def _with_id(value: bytes, rid: str) -> bytes:
    return (
        b'{"resourceType":"Patient","id":"'
        + rid.encode()
        + b'","name":[{"family":'
        + value
        + b"}]}"
    )


def _entry(resource: bytes, method: str, url: str) -> bytes:
    return (
        b'{"resource":'
        + resource
        + b',"request":{"method":"'
        + method.encode()
        + b'","url":"'
        + url.encode()
        + b'"}}'
    )


def _bundle(kind: str, entries: list[bytes]) -> bytes:
    return (
        b'{"resourceType":"Bundle","type":"'
        + kind.encode()
        + b'","entry":['
        + b",".join(entries)
        + b"]}"
    )


def _state(client: FlaskClient) -> list[dict[str, Any]]:
    hub = client.application.extensions["fhirhub"]
    return sorted(hub.db[RESOURCES].find({}), key=lambda d: str(d["_id"]))


@pytest.mark.parametrize(("value", "fragment"), BAD_VALUES)
def test_every_write_path_answers_400_and_writes_nothing(
    client: FlaskClient, value: bytes, fragment: str
) -> None:
    keep = create(client, patient(identifier=[{"system": "s", "value": "keep"}]))
    rid = body(keep)["id"]
    before = _state(client)
    good = orjson.dumps(patient())
    attempts: list[tuple[str, str, bytes, dict[str, str]]] = [
        ("POST", "/fhir/Patient", _family(value), FHIR_JSON),
        (
            "POST",
            "/fhir/Patient",
            _family(value),
            {**FHIR_JSON, "If-None-Exist": "identifier=s|new"},
        ),
        ("PUT", "/fhir/Patient/fresh", _with_id(value, "fresh"), FHIR_JSON),
        ("PUT", f"/fhir/Patient/{rid}", _with_id(value, rid), FHIR_JSON),
        ("PUT", "/fhir/Patient?identifier=s|keep", _family(value), FHIR_JSON),
        ("PUT", "/fhir/Patient?identifier=s|none", _family(value), FHIR_JSON),
        (
            "PATCH",
            f"/fhir/Patient/{rid}",
            b'[{"op":"replace","path":"/name/0/family","value":' + value + b"}]",
            {"Content-Type": "application/json-patch+json"},
        ),
        (
            "PATCH",
            f"/fhir/Patient/{rid}",
            b'{"resourceType":"Parameters","parameter":[{"name":"operation","part":['
            b'{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Patient.gender"},'
            b'{"name":"value","valueString":' + value + b"}]}]}",
            {"Content-Type": "application/fhir+json"},
        ),
    ]
    for kind in ("batch", "transaction"):
        one = [_entry(_family(value), "POST", "Patient")]
        # Three or more plain writes take the batch's staged path.
        many = [_entry(good, "POST", "Patient")] * 3 + one
        for entries in (one, many):
            attempts.append(("POST", "/fhir", _bundle(kind, entries), FHIR_JSON))
    for method, url, data, headers in attempts:
        response = client.open(url, method=method, data=data, headers=headers)
        assert_outcome(response, 400, fragment)
    assert _state(client) == before
    assert client.get("/fhir/metadata").status_code == 200


def test_r4_allows_tab_cr_lf_and_astral_characters(client: FlaskClient) -> None:
    family = "Tab\tCR\rLF\n\U0001f600 \u00e9"
    created = body(create(client, patient(family)))
    assert body(client.get(f"/fhir/Patient/{created['id']}"))["name"][0]["family"] == family
    huge = {"value": 2**63 - 1, "unit": "1", "system": "http://unitsofmeasure.org", "code": "1"}
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    stored = body(create(client, {**obs, "valueQuantity": huge}))
    assert stored["valueQuantity"]["value"] == 2**63 - 1
    assert body(create(client, {**obs, "valueQuantity": {"value": 1e300}}))


@pytest.mark.parametrize(
    "query",
    ["identifier=a%00|b", "_id=a%00", "name=a%00b", "family=%01", "_sort=%00", "a%00=b"],
)
def test_search_with_control_characters_is_400(client: FlaskClient, query: str) -> None:
    assert_outcome(client.get(f"/fhir/Patient?{query}"), 400, "contains")
    headers = {**FHIR_JSON, "If-None-Exist": query}
    assert_outcome(client.post("/fhir/Patient", json=patient(), headers=headers), 400)
    assert_outcome(client.delete(f"/fhir/Patient?{query}"), 400)
    assert _state(client) == []


def test_bundle_search_entry_with_nul_is_a_400_entry(client: FlaskClient) -> None:
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": "Patient?identifier=a%00b"}}],
    }
    result = body(client.post("/fhir", json=batch, headers=FHIR_JSON))
    assert result["entry"][0]["response"]["status"] == "400"


def test_ndjson_line_with_nul_is_rejected_alone(client: FlaskClient, tmp_path: Path) -> None:
    hub = client.application.extensions["fhirhub"]
    good = [orjson.dumps({"resourceType": "Patient", "id": f"n{i}"}) for i in range(3)]
    lines = [good[0], _with_id(b'"a\\u0000b"', "bad"), good[1], _with_id(b"1e400", "big"), good[2]]
    path = tmp_path / "data.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = Importer(BundleService(hub.resources, hub.settings.fhir_base), None).import_file(path)
    assert (result.loaded, result.rejected, result.error) == (3, 2, None), result
    assert any("U+0000" in reason for reason in result.reasons)
    assert sorted(d["_id"] for d in hub.db[RESOURCES].find({"t": "Patient"})) == [
        "Patient/n0",
        "Patient/n1",
        "Patient/n2",
    ]
    _assert_no_orphans(client)


def _assert_no_orphans(client: FlaskClient) -> None:
    """Every version has its resource's current document at or beyond that version."""
    hub = client.application.extensions["fhirhub"]
    for version in hub.db[RESOURCES].find({VERSION_TYPE: {"$exists": True}}):
        current = hub.db[RESOURCES].find_one(
            {"_id": resource_key(version[VERSION_TYPE], version["rid"])}
        )
        assert current is not None and current["v"] >= version["v"], version["_id"]


# -- compensation: the database refuses a write after its first insert -------------------


def test_update_whose_current_step_fails_leaves_no_version(client: FlaskClient) -> None:
    hub = client.application.extensions["fhirhub"]
    client.put("/fhir/Patient/u", json=patient(id="u"), headers=FHIR_JSON)
    before = _state(client)

    def fail(step: str) -> None:
        if step == "current":
            raise RuntimeError("injected: the database refuses the current document")

    hub.store.before_write = fail
    try:
        response = client.put("/fhir/Patient/u", json=patient("Other", id="u"), headers=FHIR_JSON)
    finally:
        hub.store.before_write = None
    assert_outcome(response, 500)
    assert _state(client) == before
    assert client.get("/fhir/Patient/u/_history/2").status_code == 404
    assert (
        client.put("/fhir/Patient/u", json=patient("Next", id="u"), headers=FHIR_JSON).status_code
        == 200
    )


@pytest.mark.parametrize("existing", [False, True])
def test_database_refusing_the_current_document_leaves_nothing(
    client: FlaskClient, existing: bool
) -> None:
    """PostgreSQL's JSONB refuses NUL: index fields holding one (which input checks now keep
    from ever arriving) make the current document fail after the version went in."""
    hub = client.application.extensions["fhirhub"]
    if existing:
        client.put("/fhir/Patient/r", json=patient(id="r"), headers=FHIR_JSON)
    before = _state(client)
    with pytest.raises(PyMongoError):
        hub.store.write(
            "Patient",
            "r",
            patient(id="r"),
            method="PUT",
            # Raw search keys reach JSONB as they are (the plain index is stored as text).
            index={"family": ["a"], KEYS: {STRING_KEYS: ["a\x00b"]}},
        )
    assert _state(client) == before
    _assert_no_orphans(client)


def test_stale_version_that_cannot_become_current_does_not_block_the_id(
    client: FlaskClient,
) -> None:
    """A version left by a write before these checks existed, which the next writer would
    roll forward, but which the database refuses as a current document."""
    hub = client.application.extensions["fhirhub"]
    resource = {**patient("a\x00b", id="old"), "meta": {"versionId": "1"}}
    hub.db[RESOURCES].insert_one(
        {
            "_id": "Patient/old/1",
            VERSION_TYPE: "Patient",
            "rid": "old",
            "v": 1,
            "ts": hub.store.clock().replace(year=2020),
            "del": False,
            "m": "PUT",
            "res": orjson.dumps(resource).decode(),
            "pub": 0,
        }
    )
    response = client.put("/fhir/Patient/old", json=patient(id="old"), headers=FHIR_JSON)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert body(client.get("/fhir/Patient/old"))["name"][0]["family"] == "Chalmers"
    _assert_no_orphans(client)


def test_base64_patch_entry_with_nul_is_rejected(client: FlaskClient) -> None:
    """A JSON Patch inside a transaction arrives base64-encoded: decoded, it gets the same
    checks as a request body."""
    client.put("/fhir/Patient/b", json=patient(id="b"), headers=FHIR_JSON)
    before = _state(client)
    ops = b'[{"op":"replace","path":"/name/0/family","value":"a\\u0000b"}]'
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": {
                    "resourceType": "Binary",
                    "contentType": "application/json-patch+json",
                    "data": base64.b64encode(ops).decode(),
                },
                "request": {"method": "PATCH", "url": "Patient/b"},
            }
        ],
    }
    assert_outcome(client.post("/fhir", json=bundle, headers=FHIR_JSON), 400)
    assert _state(client) == before
