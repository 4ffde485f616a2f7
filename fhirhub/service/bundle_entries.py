"""Parsing Bundle.entry.request into operations (shared by batch and transaction)."""

from __future__ import annotations

from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from fhirhub.fhir.errors import BadRequest

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
# R4 http.html#trules: deletes, then creates, then updates, then reads.
ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}


@dataclass
class EntryOp:
    index: int
    method: str
    resource_type: str
    resource_id: str | None
    version_id: str | None
    query: str  # conditional criteria or search parameters (no leading '?')
    resource: dict[str, Any] | None
    full_url: str | None
    if_none_exist: str | None
    if_match: str | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"Bundle.entry[{self.index}]"


def parse_entry(index: int, entry: Any, base: str) -> EntryOp:
    where = f"Bundle.entry[{index}]"
    if not isinstance(entry, dict):
        raise BadRequest(f"{where} must be an object")
    request = entry.get("request")
    if not isinstance(request, dict):
        raise BadRequest(f"{where}.request is required in batch and transaction bundles")
    method = request.get("method")
    if method not in METHODS:
        raise BadRequest(f"{where}.request.method must be one of {', '.join(METHODS)}")
    url = request.get("url")
    if not isinstance(url, str) or not url:
        raise BadRequest(f"{where}.request.url is required")
    if url.startswith(base + "/"):
        url = url[len(base) + 1 :]
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        raise BadRequest(f"{where}.request.url must be relative to this server: {url!r}")
    segments = [s for s in parts.path.split("/") if s]
    if not segments:
        raise BadRequest(f"{where}.request.url has no resource type: {url!r}")
    resource = entry.get("resource")
    if resource is not None and not isinstance(resource, dict):
        raise BadRequest(f"{where}.resource must be a resource object")
    if method in ("POST", "PUT") and resource is None:
        raise BadRequest(f"{where}: {method} needs a resource")
    version_id = None
    if len(segments) == 4 and segments[2] == "_history":
        version_id = segments[3]
        segments = segments[:2]
    if len(segments) > 2:
        raise BadRequest(f"{where}.request.url {url!r} is not a supported bundle request")
    full_url = entry.get("fullUrl")
    op = EntryOp(
        index=index,
        method=method,
        resource_type=segments[0],
        resource_id=segments[1] if len(segments) == 2 else None,
        version_id=version_id,
        query=parts.query,
        resource=resource,
        full_url=full_url if isinstance(full_url, str) else None,
        if_none_exist=_opt_str(request.get("ifNoneExist")),
        if_match=_opt_str(request.get("ifMatch")),
    )
    seen = _observed.get()
    if seen is not None:
        seen.append(op)
    return op


# The audit log's hook: every entry parsed while a request observes them (batch and
# transaction alike), so it can record one AuditEvent per entry without the bundle code
# knowing about auditing.
_observed: ContextVar[list[EntryOp] | None] = ContextVar("fhirhub_bundle_entries", default=None)


def observe_entries() -> tuple[list[EntryOp], Token[list[EntryOp] | None]]:
    """Start collecting the entries parsed in this context: (the list that fills, the token
    for `stop_observing`, as worker threads serve one request after another)."""
    seen: list[EntryOp] = []
    return seen, _observed.set(seen)


def stop_observing(token: Token[list[EntryOp] | None]) -> None:
    _observed.reset(token)


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def unique_full_urls(bundle: Any) -> None:
    """R4 bdl-7: fullUrl is unique within a Bundle, or entries sharing one differ in
    meta.versionId, which only a history Bundle may carry. In a batch or transaction the
    fullUrl is the entry's identity (references to it are rewritten to what it becomes),
    so two entries may never share one."""
    if not isinstance(bundle, dict) or bundle.get("type") not in ("batch", "transaction"):
        return
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return
    first: dict[str, int] = {}
    for index, entry in enumerate(entries):
        full_url = entry.get("fullUrl") if isinstance(entry, dict) else None
        if not isinstance(full_url, str):
            continue
        if full_url in first:
            raise BadRequest(
                f"Bundle.entry[{index}].fullUrl {full_url[:200]!r} is also the fullUrl of "
                f"Bundle.entry[{first[full_url]}]; fullUrl must be unique in a "
                f"{bundle['type']} Bundle (R4 bdl-7)",
                code="invariant",
            )
        first[full_url] = index


def parse_bundle(bundle: Any, base: str) -> tuple[str, list[EntryOp]]:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise BadRequest("POST to the base URL needs a Bundle of type batch or transaction")
    kind = bundle.get("type")
    if kind not in ("batch", "transaction"):
        raise BadRequest(f"Bundle.type must be batch or transaction, not {kind!r}")
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise BadRequest("Bundle.entry must be an array")
    return kind, [parse_entry(i, e, base) for i, e in enumerate(entries)]
