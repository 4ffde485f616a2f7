"""Staged writes of a transaction (storage/transactions.py): many versions and current
documents in few insert commands, over parallel connections when there are many. The
versions stay invisible until the transaction's commit; any collision raises Conflict and
the caller compensates through the transaction log."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Future, wait
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo.errors import BulkWriteError

from fhirhub.fhir.errors import Conflict
from fhirhub.storage.documents import StoredVersion, encode_resource, resource_key, stored_index
from fhirhub.storage.resource_reads import POOL, ResourceReads
from fhirhub.storage.version_docs import Document, all_extents, version_doc, with_meta
from fhirhub.storage.version_writes import DUPLICATE_KEY

INSERT_CHUNK = 100
PARALLEL_MIN_DOCS = 40


@dataclass
class StagedDocs:
    """What staging a set of planned writes inserts and replaces, and what it returns."""

    versions: list[Document]
    creates: list[Document]  # current documents of new resources
    replaces: list[tuple[str, int, Document]]  # (key, prior version, current document)
    results: list[StoredVersion]


@dataclass(frozen=True)
class PlannedWrite:
    resource_type: str
    resource_id: str
    resource: dict[str, Any] | None  # None: delete
    method: str
    prior_version: int  # 0 when the resource does not exist yet
    index: Mapping[str, Any]


class StagedWrites(ResourceReads):
    def write_batch(self, plans: list[PlannedWrite], txn: str) -> list[StoredVersion]:
        """Stage many writes in few round trips (transactions). Any collision raises
        Conflict; the caller compensates through the transaction log."""
        staged = self.staged_docs(plans, txn, self.clock())
        self.write_staged(staged.versions, staged.creates, staged.replaces)
        return staged.results

    def staged_docs(self, plans: list[PlannedWrite], txn: str, moment: datetime) -> StagedDocs:
        """The documents that stage `plans` under transaction `txn` (nothing written)."""
        staged = StagedDocs([], [], [], [])
        self.stats.widen(
            entry
            for p in plans
            for entry in all_extents(p.resource_type, p.index, moment, p.resource is None)
        )
        for plan in plans:
            version = plan.prior_version + 1
            body = with_meta(plan.resource, plan.resource_id, version, moment)
            doc: dict[str, Any] = {
                "t": plan.resource_type,
                "rid": plan.resource_id,
                "v": version,
                "ts": moment,
                "del": plan.resource is None,
                "m": plan.method,
                "res": encode_resource(body),
            }
            key = resource_key(plan.resource_type, plan.resource_id)
            staged.versions.append(version_doc(doc, txn))
            # `txn` on the staged current document: compensation touches only its own.
            fields = stored_index(
                plan.resource_type, plan.resource_id, plan.index, moment, plan.resource is None
            )
            current = {**doc, "txn": txn, **fields}
            if plan.prior_version == 0:
                staged.creates.append({"_id": key, **current})
            else:
                staged.replaces.append((key, plan.prior_version, current))
            staged.results.append(StoredVersion.from_doc(doc, body))
        return staged

    def write_staged(
        self,
        versions: list[Document],
        creates: list[Document],
        replaces: list[tuple[str, int, Document]],
    ) -> None:
        self._insert_staged(versions, creates)
        for key, prior, current in replaces:
            self._step("update")
            if self.resources.replace_one({"_id": key, "v": prior}, current).matched_count != 1:
                raise Conflict(f"{key} changed while the transaction was being written")

    def insert_ahead(self, versions: list[Document]) -> Future[None]:
        """Start inserting a transaction's versions in the background (they stay invisible
        until its commit); the future raises Conflict on a collision."""

        def insert() -> None:
            self._step("ahead")
            try:
                for _, docs in _chunks(versions):
                    self.resources.insert_many(docs, ordered=True)
            except BulkWriteError as exc:
                raise Conflict(f"a version in the transaction already exists: {exc}") from None

        return POOL.submit(insert)

    def _insert_staged(self, hist_docs: list[Document], creates: list[Document]) -> None:
        """Insert a transaction's versions and new current documents (one collection, so
        each chunk of both kinds is one command). Large sets go in chunks over parallel
        connections: FerretDB converts and PostgreSQL indexes each insert command on one
        core, and the request thread only waits meanwhile. Order between the chunks does
        not matter: the versions stay invisible until the commit, and any failure is
        compensated through the transaction log."""
        everything = hist_docs + creates
        parallel = len(everything) >= PARALLEL_MIN_DOCS
        futures: list[Future[Any]] = []
        try:
            try:
                self._step("history")
                for start, docs in _chunks(everything):
                    if start + len(docs) > len(hist_docs) and start <= len(hist_docs):
                        self._step("create")  # the first chunk holding current documents
                    if parallel:
                        futures.append(POOL.submit(self.resources.insert_many, docs))
                    else:
                        self.resources.insert_many(docs, ordered=True)
            finally:
                wait(futures)  # nothing may still be writing once this returns or raises
            for future in futures:
                future.result()
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors") or []
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise  # not a race: the caller compensates and answers 500
            raise Conflict(f"a resource in the transaction changed concurrently: {exc}") from None


def _chunks(docs: list[Document]) -> list[tuple[int, list[Document]]]:
    """(offset, chunk) pairs."""
    return [(i, docs[i : i + INSERT_CHUNK]) for i in range(0, len(docs), INSERT_CHUNK)]
