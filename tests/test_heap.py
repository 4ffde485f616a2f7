"""The long-lived heap is frozen out of the cyclic collector's view (fhirhub/heap.py)."""

from __future__ import annotations

import gc

from fhirhub import heap
from fhirhub.hub import Hub


def test_settle_loads_definitions_then_freezes(hub: Hub) -> None:
    before = gc.get_threshold()
    try:
        heap.settle(hub)
        # The definitions alone are over 100k objects; all of them are now frozen.
        assert gc.get_freeze_count() > 100_000
        assert gc.get_threshold() == heap.THRESHOLDS
        assert "structure_definitions" in vars(hub.definitions)  # loaded, not lazily later
        assert hub.validator is vars(hub)["validator"]
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
