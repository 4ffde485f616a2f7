"""The access policy services consult on every read, write and search (SMART scopes).

The API layer authenticates the request and sets the policy for its duration; services
call `active()` at the few points where data is read or written. No policy (None) means
an open server: FHIRHUB_AUTH=off, CLI imports, seeding and the notification worker.
Actions are SMART v2 letters: c(reate) r(ead) u(pdate) d(elete) s(earch).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

from fhirhub.fhir.errors import NotFound
from fhirhub.fhir.search.query import SearchQuery
from fhirhub.storage.documents import StoredVersion
from fhirhub.storage.query_translation import NOTHING

Document = dict[str, Any]


@dataclass(frozen=True)
class Principal:
    """Who a token acts for: recorded as the owner of what it creates (a Subscription), so
    the owner's access can be rebuilt later from current data (fhirhub/auth/service.py)."""

    client_id: str
    user: str | None = None
    patient: str | None = None  # the launch patient of patient/ scopes
    scope: str = ""
    fhir_user: str | None = None
    admin: bool = False

    @property
    def key(self) -> str:
        """Equal for every token of the same person (or, without a user, the same client
        and patient): ownership is per principal, not per token."""
        if self.user:
            return f"user:{self.user}"
        return f"client:{self.client_id}|patient:{self.patient or ''}"

    def is_patient(self, patient_id: str) -> bool:
        """Does the token act for this patient themself (their own app or portal)?"""
        if self.fhir_user:
            return self.fhir_user == f"Patient/{patient_id}"
        return not self.admin and self.patient == patient_id


class AccessPolicy(Protocol):
    def check_type(self, resource_type: str, action: str) -> None:
        """Raise Forbidden unless some scope allows `action` on the type at all."""
        ...

    def check_resource(self, action: str, resource_type: str, resource: Document) -> None:
        """Raise Forbidden unless a scope allowing `action` covers this very resource
        (patient compartment, care-team patients, v2 query restrictions)."""
        ...

    def allows(self, action: str, resource_type: str, resource: Document) -> bool:
        """Does a scope allowing `action` cover this very resource? (never raises)"""
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

    def unrestricted(self) -> bool:
        """Full access to everything (admins, unconfined system/*.cruds)."""
        ...

    def principal(self) -> Principal:
        """Who the token acts for."""
        ...

    def check_write(
        self, action: str, resource_type: str, old: Document | None, new: Document | None
    ) -> None:
        """Raise Forbidden unless the token may make this change beyond compartments:
        access-granting types (whose subject's care it must manage) and shared types
        (directory data, owned resources). `old`: the live version replaced, None for a
        create; `new`: None for a delete."""
        ...

    def owns(self, resource_type: str, resource: Document) -> bool:
        """Is this an owned resource (Subscription, Endpoint, own directory entry) of the
        token's principal? Unrestricted tokens own nothing in particular."""
        ...

    def check_criteria(self, query: SearchQuery) -> None:
        """Raise Forbidden when a Subscription's criteria can only match data the token may
        not read."""
        ...

    def reads_patient(self, resource_type: str, patient_reference: str) -> bool:
        """May the token read `resource_type` data of this patient ("Patient/b")?"""
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
    be within what the token covers. Update-as-create (no live version) needs create.

    A live version the token may not even read answers 404, exactly as a missing id does
    (R4 security.html, "Access Denied Response Handling": a 403 would confirm it exists).
    For the same reason a confined token deleting an id it cannot see, present or not,
    gets 404 rather than the idempotent 204. New content outside the token stays 403: it
    is the caller's own, so refusing it reveals nothing."""
    policy = active()
    if policy is None:
        return
    live = current is not None and not current.deleted and current.resource is not None
    action = "d" if method == "DELETE" else ("u" if live else "c")
    policy.check_type(resource_type, action)
    # Each interaction's 404 text must not depend on whether the id exists: a DELETE may
    # come without a known id (transactions), a PATCH 404s as "does not exist" elsewhere.
    gone = f"{resource_type}: no resource with this id is known" if action == "d" else None
    if live:
        assert current is not None and current.resource is not None
        if not policy.allows(action, resource_type, current.resource):
            if not policy.allows("r", resource_type, current.resource):
                verb = "does not exist" if method == "PATCH" else "is not known"
                raise hidden(
                    resource_type, "", gone or f"{resource_type}/{current.resource_id} {verb}"
                )
            policy.check_resource(action, resource_type, current.resource)  # 403, visible
    elif action == "d" and policy.search_filter(resource_type, "d") is not None:
        raise hidden(resource_type, "", gone)
    if new is not None:
        policy.check_resource(action, resource_type, new)
    if new is not None or action == "d":
        old = current.resource if live and current is not None else None
        if old is not None or new is not None:
            policy.check_write(action, resource_type, old, new)


def guard_read(
    resource_type: str, stored: StoredVersion | None = None, missing: str | None = None
) -> None:
    """Without `stored`: may the token read this type at all (checked before any lookup, so
    a forbidden type answers 403 whether or not the id exists). With `stored`: a resource
    of a readable type that the token does not cover answers 404 with `missing`, the very
    message a nonexistent id gets, so its existence does not leak."""
    policy = active()
    if policy is None:
        return
    policy.check_type(resource_type, "r")
    resource = stored.resource if stored is not None else None
    if (
        stored is not None
        and resource is not None
        and not policy.allows("r", resource_type, resource)
    ):
        raise hidden(resource_type, stored.resource_id, missing)


def guard_gone(
    resource_type: str,
    resource_id: str,
    last_live: Callable[[], StoredVersion | None],
    missing: str | None = None,
) -> None:
    """Before answering 410 for a deleted resource: a confined token learns it existed only
    if it could read the version the deletion ended; otherwise 404 as for a missing id."""
    policy = active()
    if policy is None or policy.search_filter(resource_type, "r") is None:
        return
    prior = last_live()
    if prior is None or prior.resource is None:
        raise hidden(resource_type, resource_id, missing)
    guard_read(resource_type, prior, missing)


def hidden(resource_type: str, resource_id: str, missing: str | None = None) -> NotFound:
    return NotFound(missing or f"{resource_type}/{resource_id} is not known")


def version_visibility(
    resource_type: str | None,
    resource_types: Iterable[str],
    prior: Callable[[StoredVersion], StoredVersion | None],
) -> Callable[[StoredVersion], bool] | None:
    """For history: a judgement of each version, None when the token reads every version
    the request can reach. A deletion carries no content, so it is judged by the version it
    ended (`prior`): a patient's app sees its own deletions, never someone else's."""
    policy = active()
    if policy is None:
        return None
    if resource_type:
        policy.check_type(resource_type, "r")
    types = [resource_type] if resource_type else list(resource_types)
    if all(policy.search_filter(t, "rs") is None for t in types):
        return None

    def visible(version: StoredVersion) -> bool:
        assert policy is not None
        if policy.search_filter(version.resource_type, "rs") is None:
            return True
        resource = version.resource
        if resource is None:
            before = prior(version)
            resource = before.resource if before is not None else None
        return resource is not None and policy.visible_resource(resource)

    return visible


def visibility_filter(resource_types: Iterable[str]) -> Document | None:
    """A database filter keeping only documents of these types that the token may read
    ($everything spans types; searches use search_filter per type). Types sharing one
    filter (a patient token: the same compartment everywhere) become one branch."""
    policy = active()
    if policy is None:
        return None
    open_types: list[str] = []
    groups: dict[str, tuple[Document, list[str]]] = {}
    for name in resource_types:
        limit = policy.search_filter(name, "rs")
        if limit is None:
            open_types.append(name)
        elif limit != NOTHING:
            groups.setdefault(repr(limit), (limit, []))[1].append(name)
    if not groups:
        return None if open_types else dict(NOTHING)
    branches = [{"$and": [{"t": _one_of(names)}, limit]} for limit, names in groups.values()]
    if open_types:
        branches.insert(0, {"t": _one_of(open_types)})
    return branches[0] if len(branches) == 1 else {"$or": branches}


def restrict_includes(bundle: Document) -> Document:
    """$everything's included resources (outside the compartment, found by reference) are
    fetched without the policy: leave out those the token may not read. Its matches were
    already limited in the database, so the total stays right."""
    policy = active()
    if policy is None:
        return bundle
    kept = [
        entry
        for entry in bundle.get("entry", [])
        if entry.get("search", {}).get("mode") != "include"
        or policy.visible_resource(entry["resource"])
    ]
    return {**bundle, "entry": kept}


def _one_of(names: list[str]) -> Any:
    return names[0] if len(names) == 1 else {"$in": names}


@contextmanager
def unrestricted() -> Iterator[None]:
    """Internal lookups the policy itself needs (care teams) must not be filtered by it."""
    token = _current.set(None)
    try:
        yield
    finally:
        _current.reset(token)
