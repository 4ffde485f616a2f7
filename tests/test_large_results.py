"""Searches and histories larger than a page are read bucket by bucket (storage/walk.py)
and still page completely, in order, with cursor links both ways."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from fhirhub.storage import history_reads
from tests.helpers import FHIR_JSON, body, patient

PATIENTS = 130


@pytest.fixture
def many(client: FlaskClient) -> FlaskClient:
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


def pages(client: FlaskClient, path: str, relation: str = "next") -> list[dict[str, Any]]:
    found = []
    while path:
        page = body(client.get(path))
        found.append(page)
        following = [link["url"] for link in page["link"] if link["relation"] == relation]
        path = following[0].removeprefix("http://testserver") if following else ""
    return found


def ids_of(result: list[dict[str, Any]]) -> list[str]:
    return [e["resource"]["id"] for page in result for e in page.get("entry", [])]


def test_a_large_search_pages_through_every_match_once_in_id_order(many: FlaskClient) -> None:
    result = pages(many, "/fhir/Patient?_count=40")
    ids = ids_of(result)
    assert len(ids) == PATIENTS and len(set(ids)) == PATIENTS
    assert ids == sorted(ids)
    assert [len(page["entry"]) for page in result] == [40, 40, 40, 10]
    assert "total" not in result[0]  # more than a page: not counted
    next_links = [
        link["url"] for p in result[:-1] for link in p["link"] if link["relation"] == "next"
    ]
    assert len(next_links) == 3 and all("_cursor=" in url for url in next_links)
    # And back again from the last page, page by page.
    last = result[-1]["link"]
    previous = next(link["url"] for link in last if link["relation"] == "previous")
    backwards = pages(many, previous.removeprefix("http://testserver"), "previous")
    assert [len(page["entry"]) for page in backwards] == [40, 40, 40]
    assert ids_of(list(reversed(backwards))) == ids[:120]


@pytest.mark.parametrize(
    ("query", "matches"),
    [
        ("gender=female", 20),  # keyed: read bucket by bucket
        ("gender=female&family=Many00", 10),  # few: one read
        ("family:contains=any01", 10),  # no key: the whole type walked, filtered here
    ],
)
def test_a_smaller_search_keeps_key_order_and_cursor_paging(
    many: FlaskClient, query: str, matches: int
) -> None:
    result = pages(many, f"/fhir/Patient?{query}&_count=4")
    ids = ids_of(result)
    assert len(ids) == matches and len(set(ids)) == matches
    assert ids == sorted(ids)
    next_links = [
        link["url"] for p in result[:-1] for link in p["link"] if link["relation"] == "next"
    ]
    assert next_links and all("_cursor=" in url for url in next_links)
    previous = [link["url"] for link in result[-1]["link"] if link["relation"] == "previous"]
    back = body(many.get(previous[0].removeprefix("http://testserver")))
    assert [e["resource"]["id"] for e in back["entry"]] == [
        e["resource"]["id"] for e in result[-2]["entry"]
    ]


def test_a_short_result_has_its_total_and_an_offset_skips(many: FlaskClient) -> None:
    assert body(many.get("/fhir/Patient?gender=female"))["total"] == 20
    skipped = body(many.get("/fhir/Patient?gender=female&_offset=15&_count=10"))
    all_ids = [e["resource"]["id"] for e in body(many.get("/fhir/Patient?gender=female"))["entry"]]
    assert [e["resource"]["id"] for e in skipped["entry"]] == all_ids[15:]


@pytest.mark.parametrize("path", ["/fhir/Patient/_history", "/fhir/_history"])
def test_large_and_small_histories_are_newest_first(
    many: FlaskClient, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history_reads, "HISTORY_TOTAL_UP_TO", 50)
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

    # Long: walked, not counted; pages by offset through every version once.
    result = pages(many, f"{path}?_count=40")
    assert "total" not in result[0]
    assert order(result[0])[:3] == newest_first
    versions = [v for page in result for v in order(page)]
    assert len(versions) == PATIENTS + 3 and len(set(versions)) == PATIENTS + 3
    moments = [e["response"]["lastModified"] for page in result for e in page["entry"]]
    assert moments == sorted(moments, reverse=True)
    # Short: the same order, and its total.
    since = result[0]["entry"][2]["response"]["lastModified"]
    small = body(many.get(f"{path}?_since={since}&_count=5"))
    assert small["total"] == 3
    assert order(small) == newest_first
