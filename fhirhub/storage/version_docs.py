"""What one write stores: the clock, the FHIR meta a version gets, its version document and
the date extents it widens (search_stats). Pure functions, shared by single writes
(version_writes.py) and staged transactions (staged_writes.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from fhirhub.fhir.search.extract import EXTENTS
from fhirhub.fhir.search.keys import LAST_UPDATED, as_day, day_number
from fhirhub.storage.documents import PUB_PENDING, VERSION_TYPE, StoredVersion, version_key
from fhirhub.storage.history_walk import (
    HISTORY_CODE,
    HISTORY_KEYS,
    SYSTEM,
    history_keys,
    second_number,
)

Document = dict[str, Any]
Clock = Callable[[], datetime]


def utc_now_ms() -> datetime:
    # BSON dates hold milliseconds; truncate so meta.lastUpdated equals what is stored.
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@lru_cache(maxsize=256)  # a transaction formats one moment for each of its resources
def fhir_instant(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def extents(index: Mapping[str, Any], moment: datetime) -> dict[str, dict[str, int]]:
    """What a live current document adds to its type's date extents (search_stats)."""
    return {**(index.get(EXTENTS) or {}), LAST_UPDATED: {"lo": day_number(as_day(moment))}}


def all_extents(
    resource_type: str, index: Mapping[str, Any], moment: datetime, deleted: bool
) -> list[tuple[str, dict[str, dict[str, int]]]]:
    """A write's extents: its current document's (unless a delete) and its version's in the
    type and system history (to the second: a history page starts at the newest)."""
    second = {HISTORY_CODE: {"lo": second_number(moment)}}
    own = second if deleted else {**extents(index, moment), **second}
    return [(resource_type, own), (SYSTEM, second)]


def with_meta(
    resource: dict[str, Any] | None, resource_id: str, version: int, moment: datetime
) -> dict[str, Any] | None:
    if resource is None:
        return None
    meta = dict(resource.get("meta") or {})
    meta["versionId"] = str(version)
    meta["lastUpdated"] = fhir_instant(moment)
    body = {"resourceType": resource["resourceType"], "id": resource_id}
    body.update((k, v) for k, v in resource.items() if k not in ("resourceType", "id", "meta"))
    body["meta"] = meta
    return body


def version_doc(doc: Document, txn: str | None) -> Document:
    """The version document of a current document's fields (`t` becomes `ht`)."""
    version = {
        "_id": version_key(doc["t"], doc["rid"], doc["v"]),
        VERSION_TYPE: doc["t"],
        **{k: v for k, v in doc.items() if k != "t"},
        "pub": PUB_PENDING,
        HISTORY_KEYS: history_keys(doc["t"], doc["ts"]),
    }
    if txn:
        version["txn"] = txn
    return version


def cas_fields(stored: StoredVersion) -> Document:
    return {"v": stored.version, "ts": stored.last_updated, "del": stored.deleted}
