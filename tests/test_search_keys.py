"""Search keys (fhir/search/keys.py) reach every match: each search below is compared with
the in-memory matcher applied to every stored resource (the exact semantics), on the real
embedded database with its production indexes and counters."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

import pytest
from flask.testing import FlaskClient

from fhirhub.hub import Hub
from fhirhub.service import search_plan
from tests.helpers import FHIR_JSON, assert_outcome, body

LOINC = "http://loinc.org"
DATES = [
    "2019",
    "2019-12",
    "2019-12-31",
    "2019-12-31T23:30:00Z",
    "2020-01-01T00:30:00+02:00",  # 2019-12-31T22:30Z: the day before in UTC
    "2020-01-01",
    "2020-02-29",
    "2020-12-31T23:59:59Z",
    "2021-01-01T00:00:00Z",
    "2029-12-31",
    "2030-01-01",
    "1999-12-31",
]
PERIODS = [
    {"start": "2019-06-15", "end": "2021-02-01"},
    {"start": "2020-05-01"},  # no end
    {"end": "2020-03-01"},  # no start
    {"start": "2020-01-01T10:00:00Z", "end": "2020-01-01T11:00:00Z"},
]
QUERY_DATES = [
    "2019",
    "2019-12",
    "2019-12-31",
    "2020",
    "2020-01",
    "2020-01-01",
    "2020-01-01T10:30:00Z",
    "2021",
    "2030",
    "1999-12-31",
    "2031",
]
PREFIXES = ["", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"]
NAMES = [
    ("Zoë", ["Ångström"]),
    ("ZOE", ["Ann"]),
    ("O'Brien", ["José"]),
    ("Smith-Jones", ["Jo"]),
    ("Müller", ["Anna", "Maria"]),
    ("Andersonville-Longname", ["Zed"]),
]
CITIES = ["São Paulo", "Sao Bernardo", "Zürich"]


def put(client: FlaskClient, resource: dict[str, Any]) -> None:
    url = f"/fhir/{resource['resourceType']}/{resource['id']}"
    response = client.put(url, json=resource, headers=FHIR_JSON)
    assert response.status_code in (200, 201), response.get_data(as_text=True)


def found(client: FlaskClient, url: str) -> list[str]:
    """Every match's id, following next links (pages of 7)."""
    ids: list[str] = []
    path = f"{url}&_count=7" if "?" in url else f"{url}?_count=7"
    while path:
        response = client.get(path)
        assert response.status_code == 200, (url, response.get_data(as_text=True))
        page = body(response)
        ids += [
            e["resource"]["id"] for e in page.get("entry", []) if e["search"]["mode"] == "match"
        ]
        following = [lk["url"] for lk in page["link"] if lk["relation"] == "next"]
        path = following[0].removeprefix("http://testserver") if following else ""
    return ids


def expected(hub: Hub, resource_type: str, query: str) -> list[str]:
    ids = []
    for doc in hub.db["resources"].find({"t": resource_type, "del": False}, {"rid": 1}):
        stored = hub.store.current(resource_type, doc["rid"])
        assert stored is not None and stored.resource is not None
        if hub.search.matches(f"{resource_type}?{query}", stored.resource):
            ids.append(doc["rid"])
    return sorted(ids)


@pytest.fixture
def keyed(indexed_hub: Hub, client: FlaskClient) -> tuple[FlaskClient, Hub]:
    for n, when in enumerate(DATES):
        put(client, _obs(f"d{n}", "p0", "8867-4", effectiveDateTime=when))
    for n, period in enumerate(PERIODS):
        put(client, _obs(f"r{n}", "p1", "8480-6", effectivePeriod=period))
    put(client, _obs("none", "p1", "8480-6"))  # no date at all
    for n, (family, given) in enumerate(NAMES):
        put(
            client,
            {
                "resourceType": "Patient",
                "id": f"p{n}",
                "name": [{"family": family, "given": given}],
                "address": [{"line": ["1234 Long Street Name Avenue"], "city": CITIES[n % 3]}],
                "gender": "female" if n % 2 else "male",
                **({"birthDate": f"19{50 + n}-0{n + 1}-1{n}"} if n != 3 else {}),
                "identifier": [{"system": "urn:mrn", "value": f"M{n}"}],
            },
        )
    return client, indexed_hub


def _obs(oid: str, patient: str, code: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": f"Patient/{patient}"},
        **extra,
    }


@pytest.mark.parametrize("prefix", PREFIXES)
def test_date_searches_at_every_precision_and_prefix_find_every_match(
    keyed: tuple[FlaskClient, Hub], prefix: str
) -> None:
    client, hub = keyed
    for value in QUERY_DATES:
        query = f"date={prefix}{quote(value)}"
        assert sorted(found(client, f"/fhir/Observation?{query}")) == expected(
            hub, "Observation", query
        ), query
    # AND of two ranges, and a date with a code (two key fields in one query).
    for query in ("date=ge2019-12-31&date=lt2020-03", f"code={LOINC}|8867-4&date=ge2020-01-01"):
        assert sorted(found(client, f"/fhir/Observation?{query}")) == expected(
            hub, "Observation", query
        )


@pytest.mark.parametrize(
    "query",
    [
        "family=zo",
        "family=ZOE",
        "family=zoë",
        "family=z",  # one letter: no key, still answered
        "family:exact=Zoë",
        "family:exact=zoe",
        "family=o'b",
        "family=smith-j",
        "family=andersonville-longna",  # longer than the longest key prefix
        "family:contains=ÜLL",
        "family:contains=rien",
        "given=ang",
        "given=ANN",
        "name=jo",
        "name=josé",
        "name=mar",
        "address=1234 long street name av",
        "address-city=sao",
        "address-city=são p",
        "address-city:exact=Zürich",
        "phonetic=mul",
    ],
)
def test_string_searches_find_every_match(keyed: tuple[FlaskClient, Hub], query: str) -> None:
    client, hub = keyed
    assert sorted(found(client, f"/fhir/Patient?{query}")) == expected(hub, "Patient", query)


@pytest.mark.parametrize(
    ("resource_type", "query"),
    [
        ("Patient", "gender=female"),
        ("Patient", "gender:not=female"),
        ("Patient", "identifier=urn:mrn|M2"),
        ("Patient", "identifier=M3"),
        ("Patient", "identifier=urn:mrn|"),
        ("Patient", "birthdate=lt1953"),
        ("Patient", "birthdate:missing=true"),
        ("Observation", "subject=Patient/p1"),
        ("Observation", "subject=p0&code=8867-4"),
        ("Observation", "patient.family=zoe"),
        ("Observation", "subject:Patient.gender=female"),
        ("Observation", "date:missing=true"),
        ("Patient", "_has:Observation:subject:code=8480-6"),
        ("Patient", "_has:Observation:subject:code=8480-6&gender=male"),
        ("Observation", "_lastUpdated=gt2000-01-01"),
        ("Observation", "_lastUpdated=lt2000-01-01"),
    ],
)
def test_tokens_references_chains_and_has_find_every_match(
    keyed: tuple[FlaskClient, Hub], resource_type: str, query: str
) -> None:
    client, hub = keyed
    assert sorted(found(client, f"/fhir/{resource_type}?{query}")) == expected(
        hub, resource_type, query
    )


def test_date_sorts_page_in_order_with_undated_last(keyed: tuple[FlaskClient, Hub]) -> None:
    client, hub = keyed
    docs = {d.resource_id: d for d in hub.search.find_versions("Observation", "", 100)}
    lows = {i: hub.extractor.extract(d.resource or {}).get("date__lo") for i, d in docs.items()}
    dated = [i for i in docs if lows[i] is not None]
    ascending = sorted(dated, key=lambda i: (lows[i], f"Observation/{i}"))
    assert found(client, "/fhir/Observation?_sort=date") == [*ascending, "none"]
    descending = sorted(dated, key=lambda i: (lows[i], f"Observation/{i}"), reverse=True)
    assert found(client, "/fhir/Observation?_sort=-date") == [*descending, "none"]
    # Previous links walk back to the same pages.
    first = body(client.get("/fhir/Observation?_sort=-date&_count=5"))
    second = body(client.get(_link(first, "next")))
    back = body(client.get(_link(second, "previous")))
    assert [e["resource"]["id"] for e in back["entry"]] == descending[:5]
    born = found(client, "/fhir/Patient?_sort=birthdate")
    assert born == ["p0", "p1", "p2", "p4", "p5", "p3"]  # p3 has no birthDate: last
    updated = found(client, "/fhir/Patient?_sort=-_lastUpdated")
    assert updated == ["p5", "p4", "p3", "p2", "p1", "p0"]


def _link(bundle: dict[str, Any], relation: str) -> str:
    url = next(lk["url"] for lk in bundle["link"] if lk["relation"] == relation)
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def test_counts_come_from_maintained_counters_and_stay_exact(
    keyed: tuple[FlaskClient, Hub],
) -> None:
    client, hub = keyed
    assert hub.search.store.counts.maintained  # the embedded database's trigger
    observations = len(DATES) + len(PERIODS) + 1
    assert body(client.get("/fhir/Observation?_summary=count"))["total"] == observations
    assert client.delete("/fhir/Observation/d0").status_code in (200, 204)
    put(client, _obs("d1", "p0", "8867-4", status="amended"))  # an update counts once
    assert body(client.get("/fhir/Observation?_summary=count"))["total"] == observations - 1
    # A transaction that fails midway leaves the count as it was.
    bad = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": _obs("t1", "p0", "1"),
                "request": {"method": "PUT", "url": "Observation/t1"},
            },
            {
                "resource": {"resourceType": "Observation", "status": "nonsense"},
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
    assert client.post("/fhir", json=bad, headers=FHIR_JSON).status_code >= 400
    assert body(client.get("/fhir/Observation?_summary=count"))["total"] == observations - 1
    assert body(client.get("/fhir/Patient?_count=1&_total=accurate"))["total"] == len(NAMES)
    assert body(client.get("/fhir/Patient?_count=1&_total=estimate"))["total"] == len(NAMES)
    filtered = body(client.get("/fhir/Patient?gender=female&_count=1&_total=accurate"))
    assert filtered["total"] == len(expected(hub, "Patient", "gender=female"))
    counted = body(client.get("/fhir/Patient?gender=female&_summary=count"))
    assert counted["total"] == filtered["total"]


def test_has_pages_beyond_the_old_intermediate_limit(
    indexed_hub: Hub, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """_has read at most 1,001 inner matches and silently returned the patients among them.
    Now it returns every patient (here 1,200 inner matches for 300 patients), once each, or
    says too-costly."""
    entries = []
    for n in range(300):
        entries.append(
            {
                "fullUrl": f"urn:uuid:00000000-0000-0000-0000-{n:012d}",
                "resource": {"resourceType": "Patient", "gender": "female" if n % 3 else "male"},
                "request": {"method": "POST", "url": "Patient"},
            }
        )
        for k in range(4):
            obs = _obs("x", "x", "6301-6" if k < 3 else "8867-4")
            del obs["id"]
            obs["subject"] = {"reference": f"urn:uuid:00000000-0000-0000-0000-{n:012d}"}
            entries.append({"resource": obs, "request": {"method": "POST", "url": "Observation"}})
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    assert client.post("/fhir", json=bundle, headers=FHIR_JSON).status_code == 200
    patients = found(client, "/fhir/Patient?_has:Observation:subject:code=6301-6")
    assert len(patients) == 300 and len(set(patients)) == 300
    males = found(client, "/fhir/Patient?_has:Observation:subject:code=6301-6&gender=male")
    assert len(males) == 100
    observations = found(client, "/fhir/Observation?subject:Patient.gender=male&code=8867-4")
    assert len(observations) == 100 and len(set(observations)) == 100
    # A second _has is resolved to ids; beyond the limit that is too costly, never a subset.
    monkeypatch.setattr(search_plan, "MAX_INTERMEDIATE", 100)
    both = "_has:Observation:subject:code=6301-6&_has:Observation:subject:code=8867-4"
    assert_outcome(client.get(f"/fhir/Patient?{both}"), 400, "intermediate")


def test_an_access_compartment_is_reached_by_its_key(
    auth_client: FlaskClient, auth_hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.auth_helpers import clinical_data, register_app

    register_app(auth_hub)
    clinical_data(auth_hub)
    token = auth_hub.auth.issue_direct("app", "patient/*.rs", user="alice", patient="a")
    store = auth_hub.search.store
    reads: list[Any] = []
    original = store.read

    def recording(branches: Any, node: Any, cap: Any) -> Any:
        reads.append(branches)
        return original(branches, node, cap)

    monkeypatch.setattr(store, "read", recording)
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    result = body(auth_client.get("/fhir/Observation", headers=headers))
    ids = {e["resource"]["id"] for e in result["entry"]}
    assert ids and all(i.endswith("-a") for i in ids)
    assert reads and all(b.get("kr") == "comp=Patient/a" for branches in reads for b in branches)


def test_reindex_migrates_an_older_layout(indexed_hub: Hub, client: FlaskClient) -> None:
    put(client, {"resourceType": "Patient", "id": "old", "name": [{"family": "Before"}]})
    resources = indexed_hub.db["resources"]
    current = resources.find_one({"_id": "Patient/old"})
    assert current is not None and "ix" in current and "ks" in current
    # What an earlier fhirhub stored: the index as s_* fields, no keys; versions unkeyed.
    from fhirhub.storage.documents import STORED_INDEX_FIELDS, decode_index, index_fields

    legacy = {k: v for k, v in current.items() if k not in STORED_INDEX_FIELDS}
    legacy.update(index_fields(decode_index(current["ix"])))
    resources.replace_one({"_id": "Patient/old"}, legacy)
    resources.update_one({"_id": "Patient/old/1"}, {"$unset": {"hk": ""}})
    assert found(client, "/fhir/Patient?family=before") == []
    assert indexed_hub.store.reindex(None, indexed_hub.extractor.extract) >= 2
    assert found(client, "/fhir/Patient?family=before") == ["old"]
    history = body(client.get("/fhir/Patient/_history"))
    assert [e["resource"]["id"] for e in history["entry"]] == ["old"]
