"""Single writes: a new version, then the current document, without multi-document
transactions (store.py's docstring tells the protocol); roll-forward of a writer that died
between the two steps, and compensation's restore of a prior version."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from bson.errors import InvalidDocument
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
)

from fhirhub.fhir.errors import Conflict, PreconditionFailed
from fhirhub.storage.documents import (
    VERSION_TYPE,
    StoredVersion,
    decode_resource,
    encode_resource,
    resource_key,
    stored_index,
    version_key,
)
from fhirhub.storage.resource_reads import CAS_FIELDS, ResourceReads
from fhirhub.storage.version_docs import (
    Document,
    all_extents,
    cas_fields,
    version_doc,
    with_meta,
)

log = logging.getLogger(__name__)

STALE_AFTER = timedelta(seconds=30)
DUPLICATE_KEY = 11000
MAX_ATTEMPTS = 50  # with the backoff below: about 2 s of contention before a 409


class VersionWrites(ResourceReads):
    def write(
        self,
        resource_type: str,
        resource_id: str,
        resource: dict[str, Any] | None,
        *,
        method: str,
        expected_version: int | None = None,
        must_not_exist: bool = False,
        index: Mapping[str, Any] | None = None,
        txn: str | None = None,
        fresh_id: bool = False,
        read_before: tuple[StoredVersion | None] | None = None,
    ) -> StoredVersion:
        """Write a new version (resource None means delete). Returns the stored version.

        `fresh_id`: the caller generated the id (uuid4) just now, so there is no current
        version to read; that saves a round trip per create. A collision (practically
        impossible) still fails the history insert and falls back to the read.
        `read_before`: (current,) as the caller just read it; used instead of reading again.
        If it is stale, the history insert collides and the next attempt reads afresh."""
        key = resource_key(resource_type, resource_id)
        for attempt in range(MAX_ATTEMPTS):
            cur: Document | None
            if attempt == 0 and (fresh_id or read_before is not None):
                known = read_before[0] if read_before else None
                cur = None if known is None else cas_fields(known)
            else:
                cur = self.resources.find_one({"_id": key}, CAS_FIELDS)
            cur_version = cur["v"] if cur else 0
            live = cur is not None and not cur.get("del")
            if expected_version is not None and (not live or cur_version != expected_version):
                raise PreconditionFailed(
                    f"{key} is at version {cur_version if live else 'none (deleted or absent)'}, "
                    f"not the expected version {expected_version}"
                )
            if must_not_exist and live:
                raise Conflict(f"{key} already exists")
            new_version = cur_version + 1
            moment = self.clock()
            if cur is not None and moment <= cur["ts"]:
                moment = cur["ts"] + timedelta(milliseconds=1)
            body = with_meta(resource, resource_id, new_version, moment)
            doc: dict[str, Any] = {
                "t": resource_type,
                "rid": resource_id,
                "v": new_version,
                "ts": moment,
                "del": resource is None,
                "m": method,
                "res": encode_resource(body),
            }
            hist = version_doc(doc, txn)
            deleted = resource is None
            index = index or {}
            self.stats.widen(all_extents(resource_type, index, moment, deleted))
            current = {**doc, **stored_index(resource_type, resource_id, index, moment, deleted)}
            self._step("history")
            if cur is None:
                # A create: version and current document in one insert command.
                self._step("current")
                inserted = self._insert_new(hist, {"_id": key, **current})
                if inserted == 2:
                    return StoredVersion.from_doc(doc, body)
                if inserted == 1:  # the id was taken meanwhile: undo our version, retry
                    self.history.delete_one({"_id": hist["_id"]})
                else:
                    self._roll_forward_if_stale(key, hist["_id"], cur_version)
                _back_off(attempt)
                continue
            try:
                self.history.insert_one(hist)
            except DuplicateKeyError:
                self._roll_forward_if_stale(key, hist["_id"], cur_version)
                _back_off(attempt)
                continue
            with self._undone_on_failure(hist):
                self._step("current")
                swapped = self._swap_current(key, cur_version, current)
            if swapped:
                return StoredVersion.from_doc(doc, body)
            self.history.delete_one({"_id": hist["_id"]})
            _back_off(attempt)
        raise Conflict(f"{key} is being updated concurrently; retry the request")

    def _insert_new(self, version: Document, current: Document) -> int:
        """Insert a new resource's first version and current document, in that order, in one
        command. Returns how many went in: 2, or 1 (the current `_id` exists), or 0 (the
        version exists: another writer, or one that died between its two steps).

        FerretDB inserts the documents one by one: when the database refuses the current
        document for another reason (it then answers with a plain OperationFailure, which
        does not say how many went in), the version may be in alone, and is removed."""
        with self._undone_on_failure(version):
            try:
                self.resources.insert_many([version, current], ordered=True)
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors") or []
                if any(e.get("code") != DUPLICATE_KEY for e in errors):
                    raise
                return int(exc.details.get("nInserted", 0))
        return 2

    @contextmanager
    def _undone_on_failure(self, version: Document) -> Iterator[None]:
        """Remove our new version when the step after its insert fails for certain: nothing
        half-written stays behind (a version without its current document, pending in the
        outbox, which the next writer of the id would even roll forward). A lost connection
        is not certain (the step may have gone through): that is what rolling forward is
        for. Process death (BaseException) likewise leaves it to rolling forward."""
        try:
            yield
        except ConnectionFailure:
            raise
        except Exception:
            # Matching `ts` as well: only our version, never another writer's of that id.
            self._discard({"_id": version["_id"], "ts": version["ts"]})
            raise

    def _discard(self, version_filter: Document) -> None:
        try:
            self.history.delete_one(version_filter)
        except PyMongoError:
            log.exception("could not remove the failed write's version %s", version_filter)

    def _swap_current(self, key: str, expected: int, current: dict[str, Any]) -> bool:
        if expected == 0:
            try:
                self.resources.insert_one({"_id": key, **current})
            except DuplicateKeyError:
                return False
            return True
        result = self.resources.replace_one({"_id": key, "v": expected}, current)
        return result.matched_count == 1

    def _roll_forward_if_stale(self, key: str, hist_id: str, cur_version: int) -> None:
        orphan = self.history.find_one({"_id": hist_id})
        if orphan is None or self.uncommitted(orphan):
            return
        if orphan["ts"] > self.clock() - STALE_AFTER:
            return  # a live writer is between its two steps; the caller retries
        try:
            self._swap_current(key, cur_version, self._current_from_history(orphan))
        except (OperationFailure, InvalidDocument, OverflowError, ValueError) as exc:
            # The database refuses it as a current document (written before input checks
            # existed): it can never become current, and would block the id for good.
            log.warning("dropping version %s that cannot become current: %s", hist_id, exc)
            self._discard({"_id": hist_id})

    def restore(
        self, resource_type: str, resource_id: str, written: int, prior: int, txn: str
    ) -> bool:
        """Compensation: put back version `prior` (0 = absent) if the version `written` by
        transaction `txn` is still current. Matching the transaction too means a document
        another writer put there (a create that beat ours to the id) is left alone."""
        key = resource_key(resource_type, resource_id)
        ours = {"_id": key, "v": written, "txn": txn}
        if prior == 0:
            return self.resources.delete_one(ours).deleted_count == 1
        old = self.history.find_one({"_id": version_key(resource_type, resource_id, prior)})
        if old is None:
            return False
        return self.resources.replace_one(ours, self._current_from_history(old)).matched_count == 1

    def _current_from_history(self, version_doc: Mapping[str, Any]) -> Document:
        fields = {"t": version_doc[VERSION_TYPE]}
        fields.update((k, version_doc[k]) for k in ("rid", "v", "ts", "del", "m", "res"))
        resource = decode_resource(fields["res"])
        if resource is not None and self.index_of is not None:
            fields.update(
                stored_index(
                    fields["t"], fields["rid"], self.index_of(resource), fields["ts"], False
                )
            )
        return fields


def _back_off(attempt: int) -> None:
    # The winner of a collision needs one more round trip to finish its write; retrying at
    # once would mostly collide with it again and burn the attempts in a few milliseconds.
    time.sleep(random.uniform(0.5, 1.5) * min(0.001 * 2**attempt, 0.05))
