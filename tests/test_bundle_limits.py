"""What one batch or transaction Bundle may ask for (service/bundle_limits.py), and R4
bdl-7 (fullUrl unique in a batch or transaction)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from fhirhub.app import create_app
from fhirhub.config import Settings
from fhirhub.fhir.definitions import Definitions
from fhirhub.hub import Hub
from fhirhub.storage.documents import RESOURCES
from fhirhub.storage.search_store import SearchStore
from tests.helpers import FHIR_JSON, assert_outcome, body, patient


def bundle(kind: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


def search(url: str) -> dict[str, Any]:
    return {"request": {"method": "GET", "url": url}}


def create_entry(n: int, full_url: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": patient(f"Limit{n}"),
        "request": {"method": "POST", "url": "Patient"},
    }
    if full_url:
        entry["fullUrl"] = full_url
    return entry


@pytest.fixture
def app_with(settings: Settings, definitions: Definitions) -> Iterator[Callable[..., FlaskClient]]:
    """Apps on the test's database with other limits."""
    hubs: list[Hub] = []

    def make(**limits: int) -> FlaskClient:
        other = Hub(settings.with_overrides(**limits))
        other.__dict__["definitions"] = definitions
        hubs.append(other)
        return create_app(other.settings, other).test_client()

    yield make
    for other in hubs:
        other.close()


def written(hub: Hub) -> int:
    return hub.db[RESOURCES].count_documents({})


@pytest.mark.parametrize("kind", ["batch", "transaction"])
def test_the_75_second_batch_is_refused_before_any_work(
    client: FlaskClient, hub: Hub, kind: str
) -> None:
    """2,000 entries of `GET Patient?_count=1000` (two million resources asked for)."""
    heavy = bundle(kind, [search("Patient?_count=1000")] * 2000)
    started = time.monotonic()
    outcome = assert_outcome(client.post("/fhir", json=heavy, headers=FHIR_JSON), 422, "2000000")
    assert time.monotonic() - started < 5
    assert outcome["issue"][0]["code"] == "too-costly"
    assert "FHIRHUB_BUNDLE_MAX_SEARCH_RESULTS" in outcome["issue"][0]["diagnostics"]


def test_search_work_counts_page_sizes_and_includes(
    app_with: Callable[..., FlaskClient], hub: Hub
) -> None:
    client = app_with(bundle_max_search_results=100)
    fits = [search("Patient?_count=50"), search("Patient"), search("Patient?_summary=count")]
    assert client.post("/fhir", json=bundle("batch", fits), headers=FHIR_JSON).status_code == 200
    over = [search("Patient?_count=40&_revinclude=Observation:subject")] * 2  # 2 x 80
    assert_outcome(client.post("/fhir", json=bundle("batch", over), headers=FHIR_JSON), 422)


@pytest.mark.parametrize("kind", ["batch", "transaction"])
def test_too_many_entries_is_413_and_writes_nothing(
    app_with: Callable[..., FlaskClient], hub: Hub, kind: str
) -> None:
    client = app_with(bundle_max_entries=5)
    big = bundle(kind, [create_entry(n) for n in range(6)])
    assert_outcome(
        client.post("/fhir", json=big, headers=FHIR_JSON), 413, "FHIRHUB_BUNDLE_MAX_ENTRIES"
    )
    assert written(hub) == 0
    fits = bundle(kind, [create_entry(n) for n in range(5)])
    assert client.post("/fhir", json=fits, headers=FHIR_JSON).status_code == 200


@pytest.fixture
def slow_search(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every search query takes 50 ms more (a loaded database), so a budget runs out on cue."""
    real = SearchStore.read

    def slow(self: SearchStore, *args: Any, **kwargs: Any) -> list[dict[str, Any]] | None:
        time.sleep(0.05)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(SearchStore, "read", slow)
    yield


def test_batch_over_its_time_budget_answers_the_rest_too_costly(
    app_with: Callable[..., FlaskClient], hub: Hub, slow_search: None
) -> None:
    client = app_with(bundle_timeout_ms=300)
    batch = bundle("batch", [search("Patient")] * 40)
    result = body(client.post("/fhir", json=batch, headers=FHIR_JSON))
    statuses = [e["response"]["status"] for e in result["entry"]]
    done = statuses.count("200 OK")
    # Without the budget all 40 run (at least 2 s); with it, those begun within 300 ms.
    assert 1 <= done <= 10 and statuses == ["200 OK"] * done + ["422"] * (40 - done)
    skipped = result["entry"][-1]["response"]["outcome"]["issue"][0]
    assert skipped["code"] == "too-costly" and "FHIRHUB_BUNDLE_TIMEOUT_MS" in skipped["diagnostics"]


def test_transaction_over_its_time_budget_writes_nothing(
    app_with: Callable[..., FlaskClient], hub: Hub, slow_search: None
) -> None:
    client = app_with(bundle_timeout_ms=200)
    entries = [
        {
            **create_entry(n),
            "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier=s|{n}"},
        }
        for n in range(20)
    ]
    response = client.post("/fhir", json=bundle("transaction", entries), headers=FHIR_JSON)
    assert_outcome(response, 422, "FHIRHUB_BUNDLE_TIMEOUT_MS")
    assert hub.db[RESOURCES].count_documents({"t": "Patient"}) == 0
    assert hub.db[RESOURCES].count_documents({"ht": "Patient"}) == 0


@pytest.fixture
def tight_client(
    settings: Settings, definitions: Definitions, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FlaskClient]:
    """An app on the same database whose queries get 1 ms (as tests/test_query_budget.py)."""
    if not hub.store.is_ferretdb():
        pytest.skip("MongoDB may answer a 300-document sort within 1 ms")
    tight = Hub(settings.with_overrides(query_timeout_ms=1))
    tight.__dict__["definitions"] = definitions
    try:
        yield create_app(tight.settings, tight).test_client()
    finally:
        tight.close()


def test_search_entries_have_the_query_budget_of_searches(
    client: FlaskClient, tight_client: FlaskClient
) -> None:
    loaded = bundle("transaction", [create_entry(n) for n in range(300)])
    assert client.post("/fhir", json=loaded, headers=FHIR_JSON).status_code == 200
    batch = bundle(
        "batch",
        [search("Patient?_sort=family"), {"request": {"method": "GET", "url": "Patient/x"}}],
    )
    result = body(tight_client.post("/fhir", json=batch, headers=FHIR_JSON))
    first = result["entry"][0]["response"]
    assert first["status"] == "400"
    issue = first["outcome"]["issue"][0]
    assert issue["code"] == "too-costly" and "FHIRHUB_QUERY_TIMEOUT_MS" in issue["diagnostics"]
    assert result["entry"][1]["response"]["status"] == "404"  # the rest still ran


# -- R4 bdl-7 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["batch", "transaction"])
def test_duplicate_full_url_is_400_and_writes_nothing(
    client: FlaskClient, hub: Hub, kind: str
) -> None:
    same = "urn:uuid:6f1f0a4e-2b1c-4d2e-9f3a-0000000000aa"
    entries = [create_entry(0, same), create_entry(1), create_entry(2, same)]
    outcome = assert_outcome(
        client.post("/fhir", json=bundle(kind, entries), headers=FHIR_JSON), 400, "bdl-7"
    )
    assert "Bundle.entry[2].fullUrl" in outcome["issue"][0]["diagnostics"]
    assert written(hub) == 0
    entries[2]["fullUrl"] = "urn:uuid:6f1f0a4e-2b1c-4d2e-9f3a-0000000000bb"
    assert client.post("/fhir", json=bundle(kind, entries), headers=FHIR_JSON).status_code == 200
