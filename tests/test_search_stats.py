"""Date extents (storage/search_stats.py) under concurrent first writes of a type."""

from __future__ import annotations

import threading

from fhirhub.hub import Hub
from fhirhub.storage.search_stats import STATS, SearchStats

THREADS = 8


def test_first_writers_of_a_type_racing_all_widen_its_extents(hub: Hub) -> None:
    """Upserts of one new _id raced (a duplicate key: a 500 on a create after a restart) and
    FerretDB's read-compute-write `$min`/`$max` lost bounds; every bound must be kept."""
    types = [f"Race{n}" for n in range(10)]
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def widen(n: int) -> None:
        stats = SearchStats(hub.db)  # a process of its own: nothing widened yet
        barrier.wait()
        try:
            for resource_type in types:
                stats.widen([(resource_type, {"date": {"lo": 20260101 + n}})])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=widen, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    for resource_type in types:
        extent = SearchStats(hub.db).extents(resource_type)["date"]
        assert extent.lo == (20260101, 20260101 + THREADS - 1)
    # One row per bound: at most one per writer and field, never a row per write.
    assert hub.db[STATS].count_documents({"t": "Race0"}) <= 2 * THREADS
