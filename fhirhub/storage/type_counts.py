"""How many live resources a type has, without reading them.

On the embedded database a trigger keeps the counts (embedded/pg_counters.py); elsewhere
MongoDB counts with its index on (t, del).
"""

from __future__ import annotations

import time

from pymongo.database import Database

from fhirhub.storage.budget import DEFAULT_BUDGET_MS, within_budget
from fhirhub.storage.documents import RESOURCES

COUNTS = "type_counts"
ESTIMATE_AGE_S = 5.0
INSTALLED = "~installed"


class TypeCounts:
    def __init__(self, db: Database, budget_ms: int = DEFAULT_BUDGET_MS):
        self.db = db
        self.budget_ms = budget_ms
        self._maintained: bool | None = None
        self._recent: dict[str, tuple[float, int]] = {}

    @property
    def maintained(self) -> bool:
        if self._maintained is None:
            marker = self.db[COUNTS].find_one({"_id": INSTALLED}, {"_id": 1})
            self._maintained = marker is not None
        return self._maintained

    def estimate(self, resource_type: str) -> int:
        """The count, up to a few seconds old (to size a walk, not to answer)."""
        now = time.monotonic()
        cached = self._recent.get(resource_type)
        if cached is None or now - cached[0] > ESTIMATE_AGE_S:
            cached = (now, self.count(resource_type))
            self._recent[resource_type] = cached
        return cached[1]

    def count(self, resource_type: str) -> int:
        if self.maintained:
            rows = self.db[COUNTS].find({"t": resource_type}, {"n": 1})
            return sum(int(row.get("n", 0)) for row in rows)
        with within_budget("counting the resources", self.budget_ms):
            return self.db[RESOURCES].count_documents(
                {"t": resource_type, "del": False}, maxTimeMS=self.budget_ms
            )
