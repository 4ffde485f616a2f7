"""History reads: an instance's versions, and type and system history walked through the
time buckets of its versions newest first (history_walk.py), so a page of a long history
is read without counting it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING

from fhirhub.storage.budget import within_budget
from fhirhub.storage.documents import VERSION_TYPE, StoredVersion, versions_filter
from fhirhub.storage.history_walk import HISTORY_CODE, SYSTEM, HistoryTree, number_second
from fhirhub.storage.resource_reads import VREAD_FIELDS, ResourceReads
from fhirhub.storage.version_docs import Document
from fhirhub.storage.walk import Walk

# FerretDB: histories up to this many versions are read once and ordered here (history_page).
SORT_IN_MEMORY = 1000
# A type or system history page reads at least this many versions, so a short history
# gets its total (a longer one is walked, not counted: no total).
HISTORY_TOTAL_UP_TO = 50


class HistoryReads(ResourceReads):
    def history_page(
        self,
        resource_type: str | None,
        resource_id: str | None,
        since: datetime | None,
        before: datetime | None,
        offset: int,
        count: int,
    ) -> tuple[list[StoredVersion], int | None]:
        """A page of versions newest first and their total (None: more than were read,
        for a type or system history, which is walked rather than counted)."""
        if resource_id is None:
            return self._walked_history(resource_type, since, before, offset, count)
        query: dict[str, Any] = {}
        pending = self.pending_transactions()
        if pending:
            query["txn"] = {"$nin": pending}
        if resource_type:
            query["t"] = resource_type
        if resource_id:
            query["rid"] = resource_id
        query = versions_filter(query)
        if since or before:
            query["ts"] = {}
            if since:
                query["ts"]["$gte"] = since
            if before:
                query["ts"]["$lte"] = before
        with within_budget("this history", self.budget_ms):
            if not self.sorts_large_results:
                # FerretDB sorts in Go after reading every match either way; up to
                # SORT_IN_MEMORY versions, one unsorted read (which stops early) is the
                # page and the total at once, instead of a count and a sorted read.
                found = list(
                    self.history.find(query).limit(SORT_IN_MEMORY + 1).max_time_ms(self.budget_ms)
                )
                if len(found) <= SORT_IN_MEMORY:
                    ordered = _newest_first(found, by_version=resource_id is not None)
                    page = ordered[offset : offset + count]
                    return [StoredVersion.from_doc(d) for d in page], len(found)
            sort = [("v", DESCENDING)] if resource_id else [("ts", DESCENDING), ("_id", ASCENDING)]
            cursor = self.history.find(query).sort(sort).skip(offset).limit(count)
            total = self.history.count_documents(query, maxTimeMS=self.budget_ms)
            return [StoredVersion.from_doc(d) for d in cursor.max_time_ms(self.budget_ms)], total

    def _walked_history(
        self,
        resource_type: str | None,
        since: datetime | None,
        before: datetime | None,
        offset: int,
        count: int,
    ) -> tuple[list[StoredVersion], int | None]:
        owner = resource_type or SYSTEM
        extent = self.stats.extents(owner).get(HISTORY_CODE)
        if extent is None or extent.lo is None:
            return [], 0
        first, last = number_second(extent.lo[0]), number_second(extent.lo[1])
        if since is not None:
            first = max(first, since.replace(microsecond=0))
        if before is not None:
            last = min(last, before)
        if first > last:
            return [], 0
        pending = set(self.pending_transactions())

        def visible(doc: Document) -> bool:
            if doc.get("txn") in pending or VERSION_TYPE not in doc:
                return False
            if resource_type and doc[VERSION_TYPE] != resource_type:
                return False
            moment = doc["ts"]
            return (since is None or moment >= since) and (before is None or moment <= before)

        def read(node: dict[str, Any], cap: int | None) -> list[Document] | None:
            cursor = self.history.find(node, VREAD_FIELDS).max_time_ms(self.budget_ms)
            if cap is not None:
                cursor = cursor.limit(cap + 1)
            with within_budget("this history", self.budget_ms):
                docs = list(cursor)
            return None if cap is not None and len(docs) > cap else docs

        walk = Walk(
            tree=HistoryTree(owner, first, last),
            read=read,
            matches=visible,
            need=max(offset + count + 1, HISTORY_TOTAL_UP_TO + 1),
            prior=float("inf"),
            budget_ms=self.budget_ms,
            reverse=True,
        )
        result = walk.run()
        page = result.docs[offset : offset + count]
        total = len(result.docs) if result.complete else None
        return [StoredVersion.from_doc(d) for d in page], total


def _newest_first(docs: list[Document], by_version: bool) -> list[Document]:
    """History order: an instance's versions by number, otherwise by time (then _id)."""
    if by_version:
        return sorted(docs, key=lambda d: int(d["v"]), reverse=True)
    by_key = sorted(docs, key=lambda d: str(d["_id"]))
    return sorted(by_key, key=lambda d: d["ts"], reverse=True)  # stable: ties keep _id order
