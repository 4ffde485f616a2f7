"""The access policy services consult on every read, write and search (SMART scopes).

The API layer authenticates the request and sets the policy for its duration; services
call `active()` at the few points where data is read or written. No policy (None) means
an open server: FHIRHUB_AUTH=off, CLI imports, seeding and the notification worker.
Actions are SMART v2 letters: c(reate) r(ead) u(pdate) d(elete) s(earch).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

from fhirhub.storage.documents import StoredVersion

Document = dict[str, Any]


class AccessPolicy(Protocol):
    def check_type(self, resource_type: str, action: str) -> None:
        """Raise Forbidden unless some scope allows `action` on the type at all."""
        ...

    def check_resource(self, action: str, resource_type: str, resource: Document) -> None:
        """Raise Forbidden unless a scope allowing `action` covers this very resource
        (patient compartment, care-team patients, v2 query restrictions)."""
        ...

    def search_filter(self, resource_type: str, actions: str) -> Document | None:
        """Database filter limiting `resource_type` to what scopes allowing any of `actions`
        cover; None when unrestricted (never raises: searches leave things out silently)."""
        ...

    def visible(self, document: Document) -> bool:
        """May a stored document (with index fields) appear in results (includes etc.)?"""
        ...

    def visible_resource(self, resource: Document) -> bool:
        """The same for a bare resource (history, $everything)."""
        ...


_current: ContextVar[AccessPolicy | None] = ContextVar("fhirhub_access_policy", default=None)


def active() -> AccessPolicy | None:
    return _current.get()


def install(policy: AccessPolicy | None) -> object:
    """Set the policy for this request; returns the token to pass to `uninstall`."""
    return _current.set(policy)


def uninstall(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]


def guard_write(
    method: str,
    resource_type: str,
    new: Document | None,
    current: StoredVersion | None,
) -> None:
    """Access control for a write: the version being replaced and the new content must both
    be within what the token covers. Update-as-create (no live version) needs create."""
    policy = active()
    if policy is None:
        return
    live = current is not None and not current.deleted and current.resource is not None
    action = "d" if method == "DELETE" else ("u" if live else "c")
    policy.check_type(resource_type, action)
    if live:
        assert current is not None and current.resource is not None
        policy.check_resource(action, resource_type, current.resource)
    if new is not None:
        policy.check_resource(action, resource_type, new)


def guard_read(resource_type: str, stored: StoredVersion | None = None) -> None:
    """Without `stored`: may the token read this type at all (checked before any lookup, so
    a forbidden type answers 403 whether or not the id exists)."""
    policy = active()
    if policy is None:
        return
    if stored is None or stored.resource is None:
        policy.check_type(resource_type, "r")
    else:
        policy.check_resource("r", resource_type, stored.resource)


def restrict_bundle(bundle: Document, resource_type: str | None) -> Document:
    """History and $everything Bundles built straight from storage: leave out entries the
    token may not read. Deleted versions carry no content to judge, so they stay only when
    the type is readable without restriction. Totals would count hidden entries: dropped."""
    policy = active()
    if policy is None:
        return bundle
    if resource_type:
        policy.check_type(resource_type, "r")
    kept = []
    for entry in bundle.get("entry", []):
        resource = entry.get("resource")
        if resource is not None:
            visible = policy.visible_resource(resource)
        else:
            entry_type = str(entry.get("fullUrl", "")).rsplit("/", 2)[-2]
            visible = policy.search_filter(entry_type, "rs") is None
        if visible:
            kept.append(entry)
    bundle.pop("total", None)
    return {**bundle, "entry": kept}


@contextmanager
def unrestricted() -> Iterator[None]:
    """Internal lookups the policy itself needs (care teams) must not be filtered by it."""
    token = _current.set(None)
    try:
        yield
    finally:
        _current.reset(token)
