"""R4 RESTful interactions on single resources, through the real app and database."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from flask import Flask
from flask.testing import FlaskClient

from tests.helpers import FHIR_JSON, assert_outcome, body, create, patient


def test_create_read_vread(client: FlaskClient) -> None:
    created = create(client, patient(id="ignored"))
    assert created.status_code == 201
    resource = body(created)
    rid = resource["id"]
    assert rid != "ignored"
    assert resource["meta"]["versionId"] == "1"
    assert created.headers["ETag"] == 'W/"1"'
    assert created.headers["Location"] == f"http://testserver/fhir/Patient/{rid}/_history/1"
    assert "Last-Modified" in created.headers

    read = client.get(f"/fhir/Patient/{rid}")
    assert read.status_code == 200
    assert body(read) == resource
    assert read.headers["ETag"] == 'W/"1"'
    assert client.get(f"/fhir/Patient/{rid}/_history/1").status_code == 200
    assert_outcome(client.get(f"/fhir/Patient/{rid}/_history/2"), 404)
    assert_outcome(client.get("/fhir/Patient/does-not-exist"), 404)


def test_update_versions_and_update_as_create(client: FlaskClient) -> None:
    first = client.put("/fhir/Patient/p1", json=patient(id="p1"), headers=FHIR_JSON)
    assert first.status_code == 201
    second = client.put("/fhir/Patient/p1", json=patient("Windsor", id="p1"), headers=FHIR_JSON)
    assert second.status_code == 200
    assert body(second)["meta"]["versionId"] == "2"
    assert body(client.get("/fhir/Patient/p1/_history/1"))["name"][0]["family"] == "Chalmers"
    assert body(client.get("/fhir/Patient/p1"))["name"][0]["family"] == "Windsor"


def test_update_id_rules(client: FlaskClient) -> None:
    assert_outcome(client.put("/fhir/Patient/p1", json=patient(), headers=FHIR_JSON), 400, "id")
    assert_outcome(
        client.put("/fhir/Patient/p1", json=patient(id="p2"), headers=FHIR_JSON), 400, "match"
    )
    obs = {"resourceType": "Observation", "id": "p1"}
    assert_outcome(client.put("/fhir/Patient/p1", json=obs, headers=FHIR_JSON), 400, "resourceType")
    assert_outcome(
        client.put("/fhir/Patient/bad$id", json=patient(id="bad$id"), headers=FHIR_JSON), 400
    )


def test_if_match(client: FlaskClient) -> None:
    client.put("/fhir/Patient/p1", json=patient(id="p1"), headers=FHIR_JSON)
    stale = {**FHIR_JSON, "If-Match": 'W/"7"'}
    assert_outcome(client.put("/fhir/Patient/p1", json=patient(id="p1"), headers=stale), 412)
    fresh = {**FHIR_JSON, "If-Match": 'W/"1"'}
    assert client.put("/fhir/Patient/p1", json=patient(id="p1"), headers=fresh).status_code == 200
    assert body(client.get("/fhir/Patient/p1"))["meta"]["versionId"] == "2"


def test_parallel_updaters_never_lose_an_update(app: Flask) -> None:
    client = app.test_client()
    client.put("/fhir/Patient/race", json=patient(id="race"), headers=FHIR_JSON)

    def bump(n: int) -> int:
        local = app.test_client()
        while True:
            current = local.get("/fhir/Patient/race")
            version = current.headers["ETag"]
            resource = body(current)
            resource["name"][0]["given"].append(f"g{n}")
            headers = {**FHIR_JSON, "If-Match": version}
            response = local.put("/fhir/Patient/race", json=resource, headers=headers)
            if response.status_code == 200:
                return n
            assert response.status_code in (409, 412), response.get_data(as_text=True)

    with ThreadPoolExecutor(max_workers=8) as pool:
        done = list(pool.map(bump, range(16)))
    final = body(client.get("/fhir/Patient/race"))
    assert final["meta"]["versionId"] == "17"
    assert sorted(final["name"][0]["given"][2:]) == sorted(f"g{n}" for n in done)


def test_parallel_unconditional_updates_all_land(app: Flask) -> None:
    """Without If-Match every update must succeed: colliding writers retry in the store."""
    client = app.test_client()
    client.put("/fhir/Patient/busy", json=patient(id="busy"), headers=FHIR_JSON)

    def put(n: int) -> int:
        resource = patient(id="busy")
        resource["name"][0]["given"].append(f"u{n}")
        response = app.test_client().put("/fhir/Patient/busy", json=resource, headers=FHIR_JSON)
        return response.status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(put, range(32)))
    assert statuses == [200] * 32
    final = body(client.get("/fhir/Patient/busy"))
    assert final["meta"]["versionId"] == "33"
    history = body(client.get("/fhir/Patient/busy/_history?_count=100"))
    assert history["total"] == 33


def test_delete_then_read_is_gone(client: FlaskClient) -> None:
    rid = body(create(client, patient()))["id"]
    deleted = client.delete(f"/fhir/Patient/{rid}")
    assert deleted.status_code == 204
    assert_outcome(client.get(f"/fhir/Patient/{rid}"), 410)
    assert client.delete(f"/fhir/Patient/{rid}").status_code == 204  # idempotent
    assert client.get(f"/fhir/Patient/{rid}/_history/1").status_code == 200
    # Update after delete revives it with the next version number.
    revived = client.put(f"/fhir/Patient/{rid}", json=patient(id=rid), headers=FHIR_JSON)
    assert body(revived)["meta"]["versionId"] == "3"


def test_conditional_read_headers(client: FlaskClient) -> None:
    created = create(client, patient())
    rid = body(created)["id"]
    etag = created.headers["ETag"]
    assert client.get(f"/fhir/Patient/{rid}", headers={"If-None-Match": etag}).status_code == 304
    assert client.get(f"/fhir/Patient/{rid}", headers={"If-None-Match": 'W/"9"'}).status_code == 200
    since = created.headers["Last-Modified"]
    assert (
        client.get(f"/fhir/Patient/{rid}", headers={"If-Modified-Since": since}).status_code == 304
    )
    old = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert client.get(f"/fhir/Patient/{rid}", headers={"If-Modified-Since": old}).status_code == 200


def test_conditional_create(client: FlaskClient) -> None:
    ident = {"system": "urn:mrn", "value": "12345"}
    headers = {"If-None-Exist": "identifier=urn:mrn|12345"}
    first = create(client, patient(identifier=[ident]), **headers)
    assert first.status_code == 201
    again = create(client, patient(identifier=[ident]), **headers)
    assert again.status_code == 200
    assert body(again)["id"] == body(first)["id"]
    create(client, patient(identifier=[{"system": "urn:other", "value": "12345"}]))
    assert_outcome(
        client.post(
            "/fhir/Patient",
            json=patient(),
            headers={**FHIR_JSON, "If-None-Exist": "identifier=12345"},
        ),
        412,
    )
    assert_outcome(
        client.post(
            "/fhir/Patient", json=patient(), headers={**FHIR_JSON, "If-None-Exist": "nonsense=x"}
        ),
        400,
        "unknown search parameter",
    )


def test_conditional_update_and_delete(client: FlaskClient) -> None:
    ident = {"system": "urn:mrn", "value": "c1"}
    created = client.put(
        "/fhir/Patient?identifier=urn:mrn|c1", json=patient(identifier=[ident]), headers=FHIR_JSON
    )
    assert created.status_code == 201
    rid = body(created)["id"]
    updated = client.put(
        "/fhir/Patient?identifier=urn:mrn|c1",
        json=patient("Other", identifier=[ident]),
        headers=FHIR_JSON,
    )
    assert updated.status_code == 200
    assert body(updated)["id"] == rid
    assert body(updated)["meta"]["versionId"] == "2"
    assert client.delete("/fhir/Patient?identifier=urn:mrn|c1").status_code == 204
    assert client.get(f"/fhir/Patient/{rid}").status_code == 410


def test_patch(client: FlaskClient) -> None:
    rid = body(create(client, patient()))["id"]
    ops = [{"op": "replace", "path": "/gender", "value": "female"}]
    headers = {"Content-Type": "application/json-patch+json", "If-Match": 'W/"1"'}
    patched = client.patch(f"/fhir/Patient/{rid}", json=ops, headers=headers)
    assert patched.status_code == 200, patched.get_data(as_text=True)
    assert body(patched)["gender"] == "female"
    assert body(patched)["meta"]["versionId"] == "2"
    assert_outcome(client.patch(f"/fhir/Patient/{rid}", json=ops, headers=headers), 412)
    bad = [{"op": "replace", "path": "/gender", "value": "blue"}]
    headers["If-Match"] = 'W/"2"'
    assert_outcome(client.patch(f"/fhir/Patient/{rid}", json=bad, headers=headers), 400, "gender")
    missing = [{"op": "remove", "path": "/nothing"}]
    assert_outcome(client.patch(f"/fhir/Patient/{rid}", json=missing, headers=headers), 422)


def test_prefer_return(client: FlaskClient) -> None:
    minimal = create(client, patient(), Prefer="return=minimal")
    assert minimal.get_data() == b""
    assert minimal.headers["Location"]
    oo = create(client, patient(), Prefer="return=OperationOutcome")
    assert body(oo)["resourceType"] == "OperationOutcome"


def test_summary_and_elements(client: FlaskClient) -> None:
    rid = body(
        create(
            client,
            patient(
                text={
                    "status": "generated",
                    "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>',
                }
            ),
        )
    )["id"]
    elements = body(client.get(f"/fhir/Patient/{rid}?_elements=gender"))
    assert set(elements) == {"resourceType", "id", "meta", "gender"}
    assert elements["meta"]["tag"][0]["code"] == "SUBSETTED"
    summary = body(client.get(f"/fhir/Patient/{rid}?_summary=true"))
    assert "name" in summary and "text" not in summary
    assert "text" not in body(client.get(f"/fhir/Patient/{rid}?_summary=data"))
    assert set(body(client.get(f"/fhir/Patient/{rid}?_summary=text"))) == {
        "resourceType",
        "id",
        "meta",
        "text",
    }
