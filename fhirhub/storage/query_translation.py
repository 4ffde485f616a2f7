"""SearchQuery -> MongoDB filter. The only place search becomes a database query.

Request input only ever appears as values; field names come from this module.
"""

from __future__ import annotations

from typing import Any

from fhirhub.fhir.search.query import SearchQuery
from fhirhub.fhir.search.tokens import query_key
from fhirhub.storage.documents import INDEX_PREFIX, resource_key


def to_filter(query: SearchQuery) -> dict[str, Any]:
    conditions: list[dict[str, Any]] = [{"t": query.resource_type}, {"del": False}]
    for clause in query.clauses:
        if clause.name == "_id":
            keys = [resource_key(query.resource_type, str(v)) for v in clause.values]
            conditions.append({"_id": keys[0]} if len(keys) == 1 else {"_id": {"$in": keys}})
        else:
            field = INDEX_PREFIX + clause.name
            values = [query_key(str(v)) for v in clause.values]
            conditions.append({field: values[0]} if len(values) == 1 else {field: {"$in": values}})
    merged: dict[str, Any] = {}
    for condition in conditions:
        for key, value in condition.items():
            if key in merged:
                return {"$and": conditions}
            merged[key] = value
    return merged
