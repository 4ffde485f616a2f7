"""A keyed search in a large type is walked, not read whole (search_sources.py
`_probe_bounded`), and still finds exactly what the in-memory matcher finds."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from fhirhub.hub import Hub
from fhirhub.service import search_sources
from tests.test_search_keys import LOINC, expected, found, keyed  # noqa: F401 (fixture)


def recorded_reads(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Any]]:
    reads: list[tuple[Any, Any]] = []
    store = hub.search.store
    original = store.read

    def recording(branches: Any, node: Any, cap: Any, batch_size: int = 0) -> Any:
        reads.append((branches, node))
        return original(branches, node, cap, batch_size)

    monkeypatch.setattr(store, "read", recording)
    return reads


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
