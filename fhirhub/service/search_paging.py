"""Pages and links of a search: keyset paging over an ordered source (the `_cursor` is the
order key of the page's last or first match), or an in-memory sort with `_offset`."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fhirhub.fhir.errors import BadRequest, TooCostly
from fhirhub.fhir.search.query import SearchQuery
from fhirhub.service.search_sources import Key, Page, Source
from fhirhub.storage.search_store import Document

SORT_IN_MEMORY = 2000
Link = dict[str, str]


@dataclass
class Paged:
    docs: list[Document]
    links: list[Link]
    total: int | None  # known without counting (the whole result was seen)
    first: Page | None  # the first page's walk (for _total=estimate)


class Pager:
    def __init__(self, base: str, self_path: str, pairs: list[tuple[str, str]]):
        self.base = base
        self.self_path = self_path
        self.kept = [(k, v) for k, v in pairs if k not in ("_cursor", "_offset")]

    def link(self, relation: str, extra: dict[str, str]) -> Link:
        params = [*self.kept, *extra.items()]
        return {"relation": relation, "url": f"{self.base}/{self.self_path}?{urlencode(params)}"}

    def keyset(self, source: Source, query: SearchQuery, backward: bool) -> Paged:
        count = query.count
        links = [self.link("first", {})]
        if query.offset and not query.cursor:  # an _offset without a cursor: walk past it
            page = source.page(query.offset + count + 1, None)
            docs = page.docs[query.offset : query.offset + count]
            keys = page.keys[query.offset : query.offset + count]
            links.insert(0, self.link("self", {"_offset": str(query.offset)}))
            if len(page.docs) > query.offset + count and keys:
                links.append(self.link("next", {"_cursor": _cursor("after", keys[-1])}))
            previous = max(0, query.offset - count)
            links.append(self.link("previous", {"_offset": str(previous)}))
            total = len(page.docs) if page.complete else None
            return Paged(docs, links, total, None)
        direction, anchor = _parse_cursor(query.cursor)
        reverse = direction == "before"
        page = source.page(count + 1, anchor, reverse)
        more = len(page.docs) > count
        docs, keys = page.docs[:count], page.keys[:count]
        if reverse:
            docs.reverse()
            keys.reverse()
        links.insert(0, self.link("self", {"_cursor": query.cursor} if query.cursor else {}))
        has_next = more if not reverse else True
        has_previous = anchor is not None and (not reverse or more)
        if keys and has_next:
            links.append(self.link("next", {"_cursor": _cursor("after", keys[-1])}))
        if keys and has_previous and backward:
            links.append(self.link("previous", {"_cursor": _cursor("before", keys[0])}))
        total = len(docs) if anchor is None and page.complete else None
        return Paged(docs, links, total, page if anchor is None else None)

    def in_memory(
        self, source: Source, query: SearchQuery, key: Callable[[Document], Any]
    ) -> Paged:
        page = source.page(SORT_IN_MEMORY + 1, None)
        if len(page.docs) > SORT_IN_MEMORY:
            raise TooCostly(
                f"_sort by these parameters orders the matches in memory, at most "
                f"{SORT_IN_MEMORY}; narrow the search or sort by a date or _id"
            )
        ordered = sorted(page.docs, key=key)
        docs = ordered[query.offset : query.offset + query.count]
        links = [self.link("first", {})]
        links.insert(0, self.link("self", {"_offset": str(query.offset)} if query.offset else {}))
        if query.offset + query.count < len(ordered):
            links.append(self.link("next", {"_offset": str(query.offset + query.count)}))
        if query.offset:
            previous = max(0, query.offset - query.count)
            links.append(self.link("previous", {"_offset": str(previous)}))
        return Paged(docs, links, len(ordered), None)


def _cursor(direction: str, key: Key) -> str:
    return f"{direction}:{json.dumps(key, default=_json, separators=(',', ':'))}"


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def _parse_cursor(cursor: str | None) -> tuple[str, Key | None]:
    if not cursor:
        return "after", None
    direction, _, raw = cursor.partition(":")
    if direction not in ("after", "before") or not raw:
        raise BadRequest("malformed _cursor")
    try:
        key = json.loads(raw)
    except ValueError:
        key = [raw]  # a cursor of an earlier version: an _id
    if not isinstance(key, list) or not key:
        raise BadRequest("malformed _cursor")
    return direction, key


# -- in-memory sort with MongoDB's order -------------------------------------------------------


def sort_key(spec: list[tuple[str, int]]) -> Callable[[Document], Any]:
    """A key putting documents in the order MongoDB's sort(spec) would (an array sorts by
    its least element ascending and its greatest descending; missing values first)."""

    def compare(a: Document, b: Document) -> int:
        for field, direction in spec:
            left, right = _sortable(a.get(field), direction), _sortable(b.get(field), direction)
            if left != right:
                return (-1 if left < right else 1) * direction
        return 0

    return functools.cmp_to_key(compare)


def _sortable(value: Any, direction: int) -> tuple[int, Any]:
    if isinstance(value, list):
        values = [_sortable(v, direction) for v in value]
        if not values:
            return (0, 0)
        return min(values) if direction == 1 else max(values)
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (4, value)
    if isinstance(value, int | float):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    if isinstance(value, datetime):
        return (3, value.timestamp())
    return (5, str(value))
