"""History interactions: instance, type and system history as R4 history Bundles."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

from fhirhub.fhir.dates import parse_period
from fhirhub.fhir.errors import BadRequest
from fhirhub.storage.documents import StoredVersion
from fhirhub.storage.store import ResourceStore, fhir_instant

DEFAULT_COUNT = 50
MAX_COUNT = 1000
AT_SCAN_LIMIT = 10_000
# Versions judged one by one for a token that sees only part of them (see history_bundle).
SCAN_LIMIT = 2_000
Visible = Callable[[StoredVersion], bool]
_STATUS = {"POST": "201 Created", "PUT": "200 OK", "PATCH": "200 OK", "DELETE": "204 No Content"}


@dataclass(frozen=True)
class HistoryRequest:
    resource_type: str | None
    resource_id: str | None
    count: int
    offset: int
    since: datetime | None
    at: tuple[datetime, datetime] | None
    # Upper bound fixed by the first page so later pages do not shift as new versions arrive.
    snapshot: datetime | None

    @classmethod
    def from_args(
        cls, resource_type: str | None, resource_id: str | None, args: dict[str, str]
    ) -> HistoryRequest:
        def integer(name: str, default: int) -> int:
            raw = args.get(name)
            if raw is None or raw == "":
                return default
            if not raw.isdigit():
                raise BadRequest(f"{name} must be a non-negative integer")
            return int(raw)

        since = parse_period(args["_since"], "_since")[0] if args.get("_since") else None
        at = parse_period(args["_at"], "_at") if args.get("_at") else None
        snapshot = (
            parse_period(args["_snapshot"], "_snapshot")[1] if args.get("_snapshot") else None
        )
        return cls(
            resource_type,
            resource_id,
            min(integer("_count", DEFAULT_COUNT), MAX_COUNT),
            integer("_offset", 0),
            since,
            at,
            snapshot,
        )


def _entry(base: str, stored: StoredVersion) -> dict[str, Any]:
    path = f"{stored.resource_type}/{stored.resource_id}"
    entry: dict[str, Any] = {"fullUrl": f"{base}/{path}"}
    if stored.resource is not None:
        entry["resource"] = stored.resource
    method = "POST" if stored.method == "POST" else stored.method
    entry["request"] = {
        "method": "PUT" if method == "PATCH" else method,
        "url": stored.resource_type if method == "POST" else path,
    }
    entry["response"] = {
        "status": _STATUS.get(stored.method, "200 OK"),
        "etag": stored.etag,
        "lastModified": fhir_instant(stored.last_updated),
    }
    return entry


def history_bundle(
    store: ResourceStore, base: str, req: HistoryRequest, visible: Visible | None = None
) -> dict[str, Any]:
    """`visible`: the access policy's judgement of each version, None when everything the
    request can reach is visible. Versions carry no search index fields, so the database
    cannot filter them: up to SCAN_LIMIT candidate versions are judged in memory, giving a
    correct total and full pages. Beyond that the total is left out (counting would mean
    judging every version ever written) and each page holds what is visible of it."""
    snapshot = req.snapshot or store.clock()
    show_total = True
    if visible is not None:
        versions, total, show_total = _visible_page(store, req, snapshot, visible)
    elif req.at is not None:
        versions, total = _versions_at(store, req, snapshot)
    else:
        versions, total = store.history_page(
            req.resource_type, req.resource_id, req.since, snapshot, req.offset, req.count
        )
    path = "/".join(p for p in (req.resource_type, req.resource_id) if p)
    url = f"{base}/{path}/_history" if path else f"{base}/_history"

    def link(relation: str, offset: int) -> dict[str, str]:
        params: dict[str, str] = {"_count": str(req.count), "_offset": str(offset)}
        params["_snapshot"] = fhir_instant(snapshot)
        if req.since:
            params["_since"] = fhir_instant(req.since)
        return {"relation": relation, "url": f"{url}?{urlencode(params)}"}

    links = [link("self", req.offset), link("first", 0)]
    if total is None or req.offset + req.count < total:  # None: more than were read
        links.append(link("next", req.offset + req.count))
    if req.offset > 0:
        links.append(link("previous", max(0, req.offset - req.count)))
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "history"}
    if show_total and total is not None:
        bundle["total"] = total
    bundle["link"] = links
    bundle["entry"] = [_entry(base, v) for v in versions]
    return bundle


def instance_visible(store: ResourceStore, req: HistoryRequest, visible: Visible) -> bool:
    """Has the token seen any version of this instance, whatever _since/_at say? If not,
    its history answers 404 like an id that does not exist."""
    candidates, _ = store.history_page(
        req.resource_type, req.resource_id, None, req.snapshot, 0, SCAN_LIMIT
    )
    return any(visible(v) for v in candidates)


def _visible_page(
    store: ResourceStore, req: HistoryRequest, snapshot: datetime, visible: Visible
) -> tuple[list[StoredVersion], int | None, bool]:
    """(page, count for the paging links, whether that count is the visible total)."""
    if req.at is not None:
        everything = HistoryRequest(
            req.resource_type, req.resource_id, SCAN_LIMIT, 0, None, req.at, snapshot
        )
        candidates, found_at = _versions_at(store, everything, snapshot)
        found: int | None = found_at
    else:
        candidates, found = store.history_page(
            req.resource_type, req.resource_id, req.since, snapshot, 0, SCAN_LIMIT
        )
    if found is not None and found <= SCAN_LIMIT:
        kept = [v for v in candidates if visible(v)]
        return kept[req.offset : req.offset + req.count], len(kept), True
    if req.at is not None:
        page, found_at = _versions_at(store, req, snapshot)
        found = found_at
    else:
        page, found = store.history_page(
            req.resource_type, req.resource_id, req.since, snapshot, req.offset, req.count
        )
    return [v for v in page if visible(v)], found, False


def _versions_at(
    store: ResourceStore, req: HistoryRequest, snapshot: datetime
) -> tuple[list[StoredVersion], int]:
    """Versions current at some point during the _at period."""
    assert req.at is not None
    start, end = req.at
    candidates, _ = store.history_page(
        req.resource_type, req.resource_id, None, min(end, snapshot), 0, AT_SCAN_LIMIT
    )
    chosen: list[StoredVersion] = []
    seen_before_start: set[tuple[str, str]] = set()
    for version in sorted(candidates, key=lambda v: v.last_updated, reverse=True):
        key = (version.resource_type, version.resource_id)
        if version.last_updated >= start:
            chosen.append(version)
        elif key not in seen_before_start:
            seen_before_start.add(key)
            if not version.deleted:
                chosen.append(version)
    return chosen[req.offset : req.offset + req.count], len(chosen)


def http_date(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)
