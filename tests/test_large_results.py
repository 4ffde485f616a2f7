"""Searches and histories larger than what the database can sort cheaply still page
completely (FerretDB: stored order with _offset; MongoDB: _id order with _cursor)."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from fhirhub.hub import Hub
from fhirhub.service import search as search_service
from fhirhub.storage import store as resource_store
from tests.helpers import FHIR_JSON, body, patient

PATIENTS = 130
IN_MEMORY = 50  # stands in for the 1,000 of production, so the test needs few resources
WHOLE_READ = 10  # and this for its 100


@pytest.fixture
def many(client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> FlaskClient:
    monkeypatch.setattr(search_service, "KEY_ORDER_IN_MEMORY", IN_MEMORY)
    monkeypatch.setattr(search_service, "WHOLE_READ", WHOLE_READ)
    monkeypatch.setattr(resource_store, "SORT_IN_MEMORY", IN_MEMORY)
    entries = [
        {
            "resource": patient(f"Many{i:03d}", gender="female" if i < 20 else "male"),
            "request": {"method": "POST", "url": "Patient"},
        }
        for i in range(PATIENTS)
    ]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    assert client.post("/fhir", json=bundle, headers=FHIR_JSON).status_code == 200
    return client


def pages(client: FlaskClient, path: str) -> list[dict[str, Any]]:
    found = []
    while path:
        page = body(client.get(path))
        found.append(page)
        following = [link["url"] for link in page["link"] if link["relation"] == "next"]
        path = following[0].removeprefix("http://testserver") if following else ""
    return found


def test_a_large_search_pages_through_every_match_once(many: FlaskClient, hub: Hub) -> None:
    result = pages(many, "/fhir/Patient?_count=40")
    ids = [e["resource"]["id"] for page in result for e in page.get("entry", [])]
    assert len(ids) == PATIENTS
    assert len(set(ids)) == PATIENTS
    assert [len(page["entry"]) for page in result] == [40, 40, 40, 10]
    next_links = [
        link["url"] for p in result[:-1] for link in p["link"] if link["relation"] == "next"
    ]
    if hub.search.store.sorts_large_results:
        assert all("_cursor=" in url for url in next_links)
        assert ids == sorted(ids)
    else:
        # More matches than are put in key order here: stored order, offset paging.
        assert all("_offset=" in url for url in next_links)
        assert "total" not in result[0]


@pytest.mark.parametrize(
    ("query", "matches"),
    [
        ("gender=female", 20),  # ordered by key, pages read by key
        ("gender=female&family=Many00", 10),  # few: read whole at once
    ],
)
def test_a_small_search_keeps_key_order_and_cursor_paging(
    many: FlaskClient, query: str, matches: int
) -> None:
    result = pages(many, f"/fhir/Patient?{query}&_count=4")
    ids = [e["resource"]["id"] for page in result for e in page["entry"]]
    assert len(ids) == matches
    assert len(set(ids)) == matches
    assert ids == sorted(ids)
    next_links = [
        link["url"] for p in result[:-1] for link in p["link"] if link["relation"] == "next"
    ]
    assert next_links and all("_cursor=" in url for url in next_links)
    # Back from the last page gives the page before it.
    previous = [link["url"] for link in result[-1]["link"] if link["relation"] == "previous"]
    back = body(many.get(previous[0].removeprefix("http://testserver")))
    assert [e["resource"]["id"] for e in back["entry"]] == [
        e["resource"]["id"] for e in result[-2]["entry"]
    ]


@pytest.mark.parametrize("path", ["/fhir/Patient/_history", "/fhir/_history"])
def test_large_and_small_histories_are_newest_first_with_totals(
    many: FlaskClient, path: str
) -> None:
    first = body(many.get("/fhir/Patient?_count=3"))["entry"]
    updated = []
    for entry in first:  # three later versions, each with its own lastUpdated
        resource = {**entry["resource"], "gender": "other"}
        response = many.put(f"/fhir/Patient/{resource['id']}", json=resource, headers=FHIR_JSON)
        assert response.status_code == 200
        updated.append(resource["id"])
    newest_first = [f"{i}/2" for i in reversed(updated)]

    def order(page: dict[str, Any]) -> list[str]:
        return [
            e["resource"]["id"] + "/" + e["resource"]["meta"]["versionId"] for e in page["entry"]
        ]

    # Large: more versions than are ordered in memory (a count and a sorted read).
    large = body(many.get(f"{path}?_count=5"))
    assert large["total"] == PATIENTS + 3
    assert order(large)[:3] == newest_first
    # Small: the same order and total from one unsorted read.
    since = large["entry"][2]["response"]["lastModified"]
    small = body(many.get(f"{path}?_since={since}&_count=5"))
    assert small["total"] == 3
    assert order(small) == newest_first
