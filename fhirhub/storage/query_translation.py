"""SearchQuery -> MongoDB filter. The only place search becomes a database query.

Request input only ever appears as values (escaped when used in a regex); field names come
from the server's own search parameter codes. Chained and _has clauses must already be
resolved to plain reference / _id clauses by the search service.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from fhirhub.fhir.dates import parse_period
from fhirhub.fhir.errors import BadRequest
from fhirhub.fhir.search.query import Clause, SearchQuery, split_prefix
from fhirhub.fhir.search.tokens import query_key
from fhirhub.fhir.search.values import normalize, reference_keys
from fhirhub.storage.documents import INDEX_PREFIX, resource_key

NOTHING: dict[str, Any] = {"_id": {"$in": []}}


def to_filter(query: SearchQuery, base: str = "") -> dict[str, Any]:
    conditions: list[dict[str, Any]] = [{"t": query.resource_type}, {"del": False}]
    for clause in query.clauses:
        conditions.append(clause_filter(query.resource_type, clause, base))
    return merge_filters(conditions)


def merge_filters(conditions: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for condition in conditions:
        for key, value in condition.items():
            if key in merged:
                return {"$and": conditions}
            merged[key] = value
    return merged


def _any(conditions: list[dict[str, Any]]) -> dict[str, Any]:
    if not conditions:
        return NOTHING
    return conditions[0] if len(conditions) == 1 else {"$or": conditions}


def _eq_any(field: str, keys: list[Any]) -> dict[str, Any]:
    if not keys:
        return NOTHING
    return {field: keys[0]} if len(keys) == 1 else {field: {"$in": keys}}


def clause_filter(resource_type: str, clause: Clause, base: str) -> dict[str, Any]:
    field = INDEX_PREFIX + clause.name
    if clause.modifier == "missing":
        present_field = field + "__lo" if clause.type == "date" else field
        if clause.name == "_lastUpdated":
            present_field = "ts"
        return {present_field: {"$exists": clause.values[0] != "true"}}
    if clause.name == "_id":
        return _eq_any("_id", [resource_key(resource_type, v) for v in clause.values])
    if clause.name == "_lastUpdated":
        return _any([_date(v, "ts", "ts", point=True) for v in clause.values])
    kind = clause.type
    if kind == "token":
        return _token(field, clause)
    if kind == "string":
        return _string(field, clause)
    if kind == "reference":
        return _reference(field, clause, base)
    if kind == "date":
        return _any([_date(v, field + "__lo", field + "__hi") for v in clause.values])
    if kind == "number":
        return _any([_number(field, v) for v in clause.values])
    if kind == "quantity":
        return _any([_quantity(field, v) for v in clause.values])
    if kind == "uri":
        return _uri(field, clause)
    if kind == "composite":
        return _eq_any(field, [composite_key(v) for v in clause.values])
    raise BadRequest(f"search parameter {clause.name} ({kind}) is not supported")


def _token(field: str, clause: Clause) -> dict[str, Any]:
    if clause.modifier == "text":
        return _any([{field + "__text": _prefix_regex(normalize(v))} for v in clause.values])
    if clause.modifier == "of-type":
        keys = []
        for value in clause.values:
            parts = value.split("|")
            if len(parts) != 3:
                raise BadRequest(f":of-type value {value!r} must be system|code|value")
            keys.append(value)
        return _eq_any(field + "__type", keys)
    conditions = []
    exact: list[str] = []
    for value in clause.values:
        if value.endswith("|") and value.count("|") == 1 and len(value) > 1:
            conditions.append({field: _prefix_regex(value)})
        else:
            exact.append(query_key(value))
    if exact:
        conditions.append(_eq_any(field, exact))
    matched = _any(conditions)
    if clause.modifier == "not":
        return {"$nor": [matched]}
    return matched


def _prefix_regex(value: str) -> dict[str, Any]:
    return {"$regex": "^" + re.escape(value)}


def _string(field: str, clause: Clause) -> dict[str, Any]:
    if clause.modifier == "exact":
        return _eq_any(field + "__exact", list(clause.values))
    if clause.modifier == "contains":
        return _any([{field: {"$regex": re.escape(normalize(v))}} for v in clause.values])
    return _any([{field: _prefix_regex(normalize(v))} for v in clause.values])


def _reference(field: str, clause: Clause, base: str) -> dict[str, Any]:
    if clause.modifier == "identifier":
        return _eq_any(field + "__identifier", [query_key(v) for v in clause.values])
    keys: list[str] = []
    for value in clause.values:
        if clause.modifier:  # a resource type: subject:Patient=123
            keys.append(f"{clause.modifier}/{value.rsplit('/', 1)[-1]}")
        else:
            keys.append(reference_keys(value, base)[0])
    return _eq_any(field, keys)


def _uri(field: str, clause: Clause) -> dict[str, Any]:
    if clause.modifier == "below":
        return _any([{field: {"$regex": "^" + re.escape(v)}} for v in clause.values])
    if clause.modifier == "above":
        prefixes: list[str] = []
        for value in clause.values:
            parts = value.split("/")
            prefixes += ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
        return _eq_any(field, prefixes)
    return _eq_any(field, list(clause.values))


# -- ordered types --------------------------------------------------------------------------


def _date(raw: str, lo: str, hi: str, point: bool = False) -> dict[str, Any]:
    prefix, value = split_prefix(raw)
    qlo, qhi = parse_period(value)
    if point:  # _lastUpdated is an instant stored in one field
        return _point(lo, prefix, qlo, qhi)
    inside = {lo: {"$gte": qlo}, hi: {"$lte": qhi}}
    if prefix == "eq":
        return inside
    if prefix == "ne":
        return {"$or": [{lo: {"$lt": qlo}}, {hi: {"$gt": qhi}}]}
    if prefix == "gt":
        return {hi: {"$gt": qhi}}
    if prefix == "lt":
        return {lo: {"$lt": qlo}}
    if prefix == "ge":
        return {"$or": [{hi: {"$gt": qhi}}, inside]}
    if prefix == "le":
        return {"$or": [{lo: {"$lt": qlo}}, inside]}
    if prefix == "sa":
        return {lo: {"$gte": qhi}}
    if prefix == "eb":
        return {hi: {"$lte": qlo}}
    slack = _approximate_slack(qlo)
    return {lo: {"$lt": qhi + slack}, hi: {"$gt": qlo - slack}}


def _point(field: str, prefix: str, qlo: datetime, qhi: datetime) -> dict[str, Any]:
    operators = {
        "eq": {"$gte": qlo, "$lt": qhi},
        "gt": {"$gte": qhi},
        "sa": {"$gte": qhi},
        "ge": {"$gte": qlo},
        "lt": {"$lt": qlo},
        "eb": {"$lt": qlo},
        "le": {"$lt": qhi},
    }
    if prefix == "ne":
        return {"$or": [{field: {"$lt": qlo}}, {field: {"$gte": qhi}}]}
    if prefix == "ap":
        slack = _approximate_slack(qlo)
        return {field: {"$gte": qlo - slack, "$lt": qhi + slack}}
    return {field: operators[prefix]}


def _approximate_slack(moment: datetime) -> timedelta:
    """R4 leaves 'ap' to the server; we use 10% of the distance from now, at least a day."""
    now = datetime.now(moment.tzinfo)
    return max(abs(now - moment) / 10, timedelta(days=1))


def _decimal(raw: str, name: str) -> Decimal:
    try:
        number = Decimal(raw)
    except InvalidOperation:
        raise BadRequest(f"{name}: {raw[:40]!r} is not a number") from None
    if not number.is_finite():
        raise BadRequest(f"{name}: {raw[:40]!r} is not a finite number")
    return number


def _number(field: str, raw: str) -> dict[str, Any]:
    prefix, value = split_prefix(raw)
    number = _decimal(value, field.removeprefix(INDEX_PREFIX))
    # Precision: '100' means [99.5, 100.5); '100.0' means [99.95, 100.05).
    exponent = number.as_tuple().exponent
    half = Decimal(5) * Decimal(10) ** (exponent - 1) if isinstance(exponent, int) else Decimal(0)
    lo, hi, exact = float(number - half), float(number + half), float(number)
    if prefix == "eq":
        return {field: {"$gte": lo, "$lt": hi}}
    if prefix == "ne":
        return {field: {"$not": {"$gte": lo, "$lt": hi}}}
    if prefix in ("gt", "sa"):
        return {field: {"$gt": exact}}
    if prefix in ("lt", "eb"):
        return {field: {"$lt": exact}}
    if prefix == "ge":
        return {field: {"$gte": exact}}
    if prefix == "le":
        return {field: {"$lte": exact}}
    slack = abs(exact) / 10
    return {field: {"$gte": exact - slack, "$lte": exact + slack}}


def _quantity(field: str, raw: str) -> dict[str, Any]:
    parts = raw.split("|")
    if len(parts) not in (1, 3):
        raise BadRequest(f"quantity value {raw!r} must be [prefix]number or number|system|code")
    condition = _number(field, parts[0])
    if len(parts) == 3:
        system, code = parts[1], parts[2]
        if code:
            unit = f"{system}|{code}" if system else f"*|{code}"
            return {**condition, field + "__unit": unit}
    return condition


def composite_key(raw: str) -> str:
    parts = raw.split("$")
    keys = []
    for index, part in enumerate(parts):
        if index == 0 or "|" in part:
            keys.append(query_key(part))
        else:
            try:
                keys.append(f"{float(Decimal(part)):.12g}")
            except InvalidOperation:
                keys.append(normalize(part))
    return "$".join(keys)


# -- sorting --------------------------------------------------------------------------------


def sort_spec(query: SearchQuery, date_codes: set[str]) -> list[tuple[str, int]]:
    spec: list[tuple[str, int]] = []
    for code, descending in query.sort:
        direction = -1 if descending else 1
        if code == "_id":
            spec.append(("_id", direction))
        elif code == "_lastUpdated":
            spec.append(("ts", direction))
        elif code in date_codes:
            spec.append((f"{INDEX_PREFIX}{code}__lo", direction))
        else:
            spec.append((INDEX_PREFIX + code, direction))
    if not any(field == "_id" for field, _ in spec):
        spec.append(("_id", 1))
    return spec
