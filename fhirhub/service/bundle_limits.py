"""How much work one batch or transaction Bundle may ask for.

A batch of 2,000 `GET Patient?_count=1000` entries held a web thread for 75 s (and would
have built a response of two million resources): each search stayed within its query
budget, but nothing bounded the Bundle. So a Bundle over the HTTP API has
- at most `max_entries` entries (413 before anything runs),
- search entries asking for at most `max_search_results` resources in all (each counts its
  page size, `_count` or the default, up to the server's maximum, once more for each
  `_include`/`_revinclude`; 422 too-costly before anything runs),
- a time budget: checked before each entry, so a Bundle stops within one query's budget
  (FHIRHUB_QUERY_TIMEOUT_MS, which every search inside it also has) of its own. A batch
  answers the entries it did not get to with 422 too-costly; a transaction fails whole
  (nothing written).
`fhirhub import` and seeding run without limits: their Bundles come from the operator.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from fhirhub.fhir.errors import FhirError, PayloadTooLarge
from fhirhub.fhir.search.query import DEFAULT_COUNT, MAX_COUNT
from fhirhub.service.bundle_entries import EntryOp


class BundleTooCostly(FhirError):
    def __init__(self, diagnostics: str):
        super().__init__(diagnostics, 422, "too-costly")


@dataclass(frozen=True)
class BundleLimits:
    max_entries: int | None = None
    max_search_results: int | None = None
    timeout_ms: int | None = None
    started: float = field(default_factory=time.monotonic)

    def check_size(self, entries: int) -> None:
        if self.max_entries is not None and entries > self.max_entries:
            raise PayloadTooLarge(
                f"the Bundle has {entries} entries; this server takes at most "
                f"{self.max_entries} per Bundle (FHIRHUB_BUNDLE_MAX_ENTRIES): split it"
            )

    def check_work(self, ops: list[EntryOp]) -> None:
        if self.max_search_results is None:
            return
        asked = sum(search_results(op) for op in ops)
        if asked > self.max_search_results:
            raise BundleTooCostly(
                f"the Bundle's search entries ask for up to {asked} resources; this server "
                f"returns at most {self.max_search_results} per Bundle "
                "(FHIRHUB_BUNDLE_MAX_SEARCH_RESULTS): use fewer entries, smaller _count or "
                "separate requests"
            )

    def expired(self) -> bool:
        if self.timeout_ms is None:
            return False
        return (time.monotonic() - self.started) * 1000 > self.timeout_ms

    def timeout_error(self, what: str) -> BundleTooCostly:
        seconds = (self.timeout_ms or 0) / 1000
        return BundleTooCostly(
            f"{what}: the Bundle used up its {seconds:g} s budget (FHIRHUB_BUNDLE_TIMEOUT_MS)"
        )

    def check_time(self, what: str) -> None:
        if self.expired():
            raise self.timeout_error(what)


def search_results(op: EntryOp) -> int:
    """The most resources a search entry may return (0 for any other entry)."""
    if op.method not in ("GET", "HEAD") or op.resource_id is not None:
        return 0
    count, includes = DEFAULT_COUNT, 0
    for key, value in parse_qsl(op.query, keep_blank_values=True):
        if key == "_count":
            count = min(int(value), MAX_COUNT) if value.isdigit() and len(value) < 10 else count
        elif key == "_summary" and value == "count":
            return 1
        elif key.startswith(("_include", "_revinclude")):
            includes += 1
    return max(count, 1) * (1 + includes)
