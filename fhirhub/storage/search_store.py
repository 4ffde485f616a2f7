"""Running translated searches against the `resources` collection."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pymongo.database import Database

from fhirhub.storage.budget import DEFAULT_BUDGET_MS, within_budget
from fhirhub.storage.documents import RESOURCES, StoredVersion, decoded, index_fields
from fhirhub.storage.mongo import is_ferretdb

Document = dict[str, Any]


def current_document(stored: StoredVersion, index: dict[str, Any]) -> Document:
    """The shape a current document has in the store (for in-memory matching)."""
    return {
        "_id": f"{stored.resource_type}/{stored.resource_id}",
        "t": stored.resource_type,
        "rid": stored.resource_id,
        "v": stored.version,
        "ts": stored.last_updated,
        "del": stored.deleted,
        **index_fields(index),
    }


def fresh_document(resource: dict[str, Any], moment: datetime, index: dict[str, Any]) -> Document:
    return {
        "_id": f"{resource['resourceType']}/{resource.get('id', '')}",
        "t": resource["resourceType"],
        "rid": resource.get("id", ""),
        "ts": moment,
        "del": False,
        **index_fields(index),
    }


class SearchStore:
    def __init__(self, db: Database, budget_ms: int = DEFAULT_BUDGET_MS):
        self.db = db
        self.resources = db[RESOURCES]
        self.budget_ms = budget_ms  # per query (storage/budget.py)
        self._sorts: bool | None = None

    @property
    def sorts_large_results(self) -> bool:
        """Can the database return the first few matches in key order without reading all
        of them? MongoDB can (indexes); FerretDB 1.24 cannot: it fetches every match and
        sorts in Go, while an unsorted limited query stops early (storage/budget.py)."""
        if self._sorts is None:
            self._sorts = not is_ferretdb(self.db)
        return self._sorts

    def find(
        self,
        query_filter: Document,
        sort: list[tuple[str, int]],
        skip: int,
        limit: int,
    ) -> list[Document]:
        if never_matches(query_filter):
            return []
        cursor = self.resources.find(query_filter).max_time_ms(self.budget_ms)
        if sort:
            cursor = cursor.sort(sort)
        if skip:
            cursor = cursor.skip(skip)
        with within_budget("the search", self.budget_ms):
            return [decoded(doc) for doc in cursor.limit(limit)]

    def count(self, query_filter: Document) -> int:
        if never_matches(query_filter):
            return 0
        with within_budget("counting the matches", self.budget_ms):
            return self.resources.count_documents(query_filter, maxTimeMS=self.budget_ms)

    def by_keys(self, keys: Iterable[str]) -> list[Document]:
        """One _id lookup per key: FerretDB pushes down `_id` equality but not `$in`."""
        found = []
        for key in dict.fromkeys(keys):
            doc = self.resources.find_one({"_id": key, "del": False})
            if doc is not None:
                found.append(decoded(doc))
        return found

    def ids(self, query_filter: Document, limit: int) -> list[str]:
        if never_matches(query_filter):
            return []
        cursor = self.resources.find(query_filter, {"_id": 1}).limit(limit)
        with within_budget("the search", self.budget_ms):
            return [d["_id"] for d in cursor.max_time_ms(self.budget_ms)]

    def field_values(self, query_filter: Document, field: str, limit: int) -> list[Any]:
        values: list[Any] = []
        if never_matches(query_filter):
            return values
        cursor = self.resources.find(query_filter, {field: 1}).limit(limit)
        with within_budget("a _has search", self.budget_ms):
            for doc in cursor.max_time_ms(self.budget_ms):
                found = doc.get(field, [])
                values.extend(found if isinstance(found, list) else [found])
        return values


def never_matches(query_filter: Document) -> bool:
    """A filter with an empty `$in` under an AND can match nothing. Answer without asking the
    database: FerretDB does not push `$in` down and would scan the whole collection."""
    for key, value in query_filter.items():
        if key == "$and" and any(never_matches(sub) for sub in value):
            return True
        if isinstance(value, dict) and value.get("$in") == [] and len(value) == 1:
            return True
    return False


def to_stored(doc: Document) -> StoredVersion:
    return StoredVersion.from_doc(doc)
