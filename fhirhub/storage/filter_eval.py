"""Evaluate the MongoDB filters produced by query_translation against one document, in
memory, with MongoDB's semantics (an array field matches when any element matches).

This is how a single resource is matched against a search (subscriptions): the filter the
database would run is evaluated on the document the store would hold, so in-memory
matching and database search cannot disagree.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

_COMPARATORS = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}


def matches(document: dict[str, Any], query: dict[str, Any]) -> bool:
    for key, condition in query.items():
        if key == "$and":
            if not all(matches(document, sub) for sub in condition):
                return False
        elif key == "$or":
            if not any(matches(document, sub) for sub in condition):
                return False
        elif key == "$nor":
            if any(matches(document, sub) for sub in condition):
                return False
        elif not _field_matches(document.get(key, _MISSING), condition):
            return False
    return True


class _Missing:
    pass


_MISSING = _Missing()


def _candidates(value: Any) -> list[Any]:
    if value is _MISSING:
        return []
    return value if isinstance(value, list) else [value]


def _comparable(a: Any, b: Any) -> bool:
    numeric = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    return (
        (isinstance(a, numeric) and isinstance(b, numeric))
        or (isinstance(a, str) and isinstance(b, str))
        or (isinstance(a, datetime) and isinstance(b, datetime))
    )


def _field_matches(value: Any, condition: Any) -> bool:
    if not isinstance(condition, dict) or not any(k.startswith("$") for k in condition):
        return any(item == condition for item in _candidates(value)) or value == condition
    for operator, operand in condition.items():
        if operator == "$exists":
            if (value is not _MISSING) != bool(operand):
                return False
        elif operator == "$in":
            if not any(item in operand for item in _candidates(value)):
                return False
        elif operator == "$nin":
            if any(item in operand for item in _candidates(value)):
                return False
        elif operator == "$regex":
            pattern = re.compile(operand)
            if not any(isinstance(i, str) and pattern.search(i) for i in _candidates(value)):
                return False
        elif operator == "$not":
            if _field_matches(value, operand):
                return False
        elif operator in _COMPARATORS:
            compare = _COMPARATORS[operator]
            if not any(
                _comparable(item, operand) and compare(item, operand) for item in _candidates(value)
            ):
                return False
        else:
            raise ValueError(f"operator {operator} is not supported by the in-memory matcher")
    return True
