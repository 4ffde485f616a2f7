"""Instance, type and system history with paging, _since and _at."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from flask.testing import FlaskClient

from tests.helpers import FHIR_JSON, assert_outcome, body, create, patient


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def test_instance_history_lists_every_version(client: FlaskClient) -> None:
    client.put("/fhir/Patient/h", json=patient(id="h"), headers=FHIR_JSON)
    client.put("/fhir/Patient/h", json=patient("Two", id="h"), headers=FHIR_JSON)
    client.delete("/fhir/Patient/h")
    history = body(client.get("/fhir/Patient/h/_history"))
    assert history["type"] == "history"
    assert history["total"] == 3
    entries = history["entry"]
    assert [e["request"]["method"] for e in entries] == ["DELETE", "PUT", "PUT"]
    assert "resource" not in entries[0]
    assert entries[1]["resource"]["meta"]["versionId"] == "2"
    assert entries[2]["response"]["etag"] == 'W/"1"'


def test_type_and_system_history_paging_is_stable(client: FlaskClient) -> None:
    for n in range(5):
        create(client, patient(f"P{n}"))
    create(client, {"resourceType": "Organization", "name": "Acme"})
    page = body(client.get("/fhir/Patient/_history?_count=2"))
    assert page["total"] == 5
    seen = [e["resource"]["id"] for e in page["entry"]]
    next_url = next(link["url"] for link in page["link"] if link["relation"] == "next")
    create(client, patient("Late"))  # must not shift the pages already being walked
    while next_url:
        page = body(client.get(_path(next_url)))
        seen += [e["resource"]["id"] for e in page["entry"]]
        next_url = next((lk["url"] for lk in page["link"] if lk["relation"] == "next"), "")
    assert len(seen) == len(set(seen)) == 5
    assert body(client.get("/fhir/_history"))["total"] == 7


def test_since_and_at(client: FlaskClient) -> None:
    client.put("/fhir/Patient/s", json=patient(id="s"), headers=FHIR_JSON)
    time.sleep(0.05)
    mark = body(client.get("/fhir/Patient/s"))["meta"]["lastUpdated"]
    time.sleep(0.05)
    client.put("/fhir/Patient/s", json=patient("New", id="s"), headers=FHIR_JSON)
    since = body(client.get(f"/fhir/Patient/s/_history?_since={mark}"))
    assert since["total"] == 2
    late = body(client.get("/fhir/Patient/s/_history?_since=2100-01-01"))
    assert late["total"] == 0
    at = body(client.get(f"/fhir/Patient/s/_history?_at={mark}"))
    assert [e["resource"]["meta"]["versionId"] for e in at["entry"]] == ["1"]


def test_history_bad_parameters(client: FlaskClient) -> None:
    assert_outcome(client.get("/fhir/Patient/_history?_since=yesterday"), 400, "_since")
    assert_outcome(client.get("/fhir/Patient/_history?_count=-1"), 400, "_count")
    assert_outcome(client.get("/fhir/Nope/_history"), 404)
