"""Garbage-collector settings for long-running processes (web workers, worker, importer).

The R4 definitions and what is compiled from them are hundreds of thousands of long-lived
objects. CPython's cyclic collector rescans all of them in every full collection, and a
request that parses a large Bundle allocates enough to trigger such collections every few
requests: measured, 24% of the CPU of a transaction ingest went to the collector. Loading
the definitions up front and then freezing the heap moves them out of the collector's view
(gc.freeze), so full collections only scan what requests allocate; a higher first-
generation threshold makes young collections rarer. Reference counting still frees
everything as usual; only unreachable cycles that exist at the moment of freezing are kept.
"""

from __future__ import annotations

import gc
from typing import Any

# CPython's default is (700, 10, 10); a bundle allocates hundreds of thousands of objects.
THRESHOLDS = (20_000, 20, 10)


def settle(hub: Any) -> None:
    """Load what every request uses, then freeze the heap (call once per process)."""
    definitions = hub.definitions
    for name in (
        "structure_definitions",
        "resource_types",
        "datatypes",
        "code_systems",
        "value_sets",
        "search_parameters",
        "compartment_definitions",
    ):
        getattr(definitions, name)
    for name in ("validator", "search_registry", "extractor"):
        getattr(hub, name)
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
