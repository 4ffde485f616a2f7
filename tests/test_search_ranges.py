"""Two conditions on one date parameter (`birthdate=ge1970&birthdate=lt1971`) reach their
candidates through the buckets of their intersection (storage/candidates.py `_ranges`),
and a keyed search in a large type is walked, not read whole (search_sources.py
`_probe_bounded`); both still find exactly what the in-memory matcher finds."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient

from fhirhub.hub import Hub
from fhirhub.service import search_sources
from tests.test_search_keys import LOINC, expected, found, keyed  # noqa: F401 (fixture)

FIRST = ["ge", "gt", "sa", "eq", ""]
SECOND = ["lt", "le", "eb", "ge"]
PAIRS = [
    ("2019-12-31", "2020-03"),
    ("2019", "2021"),
    ("2020-01-01T10:30:00Z", "2020-01-01T11:00:00Z"),
    ("2021", "2019"),  # empty intersection of the starts: only long ranges can match
    ("1999-12-31", "2030"),
]


@pytest.mark.parametrize("first", FIRST)
def test_two_conditions_on_one_date_find_every_match(
    keyed: tuple[FlaskClient, Hub],  # noqa: F811
    first: str,
) -> None:
    client, hub = keyed
    for second in SECOND:
        for low, high in PAIRS:
            query = f"date={first}{quote(low)}&date={second}{quote(high)}"
            assert sorted(found(client, f"/fhir/Observation?{query}")) == expected(
                hub, "Observation", query
            ), query
    for query in (
        "_lastUpdated=ge2000-01-01&_lastUpdated=lt2100",
        "_lastUpdated=gt2100&_lastUpdated=lt2000",
    ):
        assert sorted(found(client, f"/fhir/Observation?{query}")) == expected(
            hub, "Observation", query
        ), query


def recorded_reads(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Any]]:
    reads: list[tuple[Any, Any]] = []
    store = hub.search.store
    original = store.read

    def recording(branches: Any, node: Any, cap: Any, batch_size: int = 0) -> Any:
        reads.append((branches, node))
        return original(branches, node, cap, batch_size)

    monkeypatch.setattr(store, "read", recording)
    return reads


def test_a_birthdate_range_reads_only_the_buckets_of_its_year(
    keyed: tuple[FlaskClient, Hub],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, hub = keyed
    reads = recorded_reads(hub, monkeypatch)
    query = "birthdate=ge1952-01-01&birthdate=lt1953-01-01"
    assert found(client, f"/fhir/Patient?{query}") == expected(hub, "Patient", query) == ["p2"]
    keys = {b["kd"] for branches, _ in reads for b in branches}
    # Each condition alone would need the buckets from 1952 on, or up to 1952.
    assert keys and all(key.startswith("birthdate<1952") for key in keys), keys


def test_a_large_type_walks_a_common_key_and_probes_an_identifier(
    keyed: tuple[FlaskClient, Hub],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, hub = keyed
    monkeypatch.setattr(search_sources, "PROBE_TYPE_MAX", 3)  # every type here is "large"
    reads = recorded_reads(hub, monkeypatch)
    query = f"code={LOINC}|8867-4"
    assert sorted(found(client, f"/fhir/Observation?{query}")) == expected(
        hub, "Observation", query
    )
    # No read of the whole key: every read is of one `_id` bucket (ends at the root only
    # once the buckets read showed the rest is small).
    assert reads and "kb" in reads[0][1], reads[0]
    reads.clear()
    assert found(client, "/fhir/Patient?identifier=urn:mrn|M2") == ["p2"]
    assert len(reads) == 1 and reads[0][1] == {"t": "Patient"}  # one read: the probe
