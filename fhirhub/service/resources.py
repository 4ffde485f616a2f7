"""Use cases for single resources: read, vread, create, update, patch, delete, validate."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import jsonpatch

from fhirhub.fhir import fhirpath_patch
from fhirhub.fhir.definitions import Definitions
from fhirhub.fhir.errors import (
    BadRequest,
    Gone,
    Issue,
    NotFound,
    PreconditionFailed,
    Unprocessable,
)
from fhirhub.fhir.search.query import ID_PATTERN
from fhirhub.service import access
from fhirhub.service.write_guards import NO_TICKET, Ticket, WriteGuard
from fhirhub.storage.conditional_claims import ClaimStore
from fhirhub.storage.documents import StoredVersion
from fhirhub.storage.store import ResourceStore

ETAG = re.compile(r'^(?:W/)?"([0-9]+)"$')
MAX_CONDITIONAL_MATCHES = 2  # we only need to know "none", "one" or "more than one"


Indexer = Callable[[dict[str, Any]], dict[str, Any]]
# (resource type, query string, limit) -> current versions matching; raises on bad criteria
Finder = Callable[[str, str, int], list[StoredVersion]]
# Type-specific write rules beyond the validator (e.g. Subscription criteria, medication
# safety): may raise a FhirError, set server-owned fields in the resource before it is
# written, and return warnings (OperationOutcome issues) for the response.
WriteHook = Callable[[dict[str, Any]], "list[Issue] | None"]


class Validator(Protocol):
    def validate(
        self, resource: dict[str, Any], *, allow_conditional_refs: bool = False
    ) -> list[Issue]: ...


@dataclass
class WriteResult:
    stored: StoredVersion
    created: bool
    warnings: list[Issue] = field(default_factory=list)
    # Conditional create that matched an existing resource: nothing was written.
    existing: bool = False


def parse_etag(value: str) -> int:
    match = ETAG.match(value.strip())
    if not match:
        raise BadRequest(f'malformed ETag {value!r}; expected W/"<versionId>"')
    return int(match.group(1))


class ResourceService:
    def __init__(
        self,
        store: ResourceStore,
        definitions: Definitions,
        validator: Validator,
        indexer: Indexer,
        finder: Finder,
        write_hooks: dict[str, WriteHook] | None = None,
        write_guards: dict[str, WriteGuard] | None = None,
        claims: ClaimStore | None = None,
    ):
        self.store = store
        self.definitions = definitions
        self.validator = validator
        self.indexer = indexer
        self.finder = finder
        self.write_hooks = write_hooks or {}
        self.write_guards = write_guards if write_guards is not None else {}
        # Serialises conditional writes with the same criteria (storage/conditional_claims.py)
        self.claims = claims or ClaimStore(store.db, store.clock)

    # -- checks --------------------------------------------------------------------------

    def check_type(self, resource_type: str) -> None:
        if resource_type not in self.definitions.resource_types:
            raise NotFound(f"unknown resource type {resource_type!r}")

    @staticmethod
    def check_id(resource_id: str) -> None:
        if not ID_PATTERN.match(resource_id):
            raise BadRequest(
                f"invalid id {resource_id[:80]!r}: ids are 1-64 characters of A-Z a-z 0-9 - ."
            )

    def validate(
        self, resource: dict[str, Any], *, allow_conditional_refs: bool = False
    ) -> list[Issue]:
        """Raise with every error found; return the warnings."""
        issues = self.validator.validate(resource, allow_conditional_refs=allow_conditional_refs)
        errors = [i for i in issues if i.severity in ("error", "fatal")]
        if errors:
            first = errors[0].diagnostics
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise BadRequest(f"resource is invalid: {first}{more}", issues)
        hook = self.write_hooks.get(str(resource.get("resourceType")))
        if hook is not None:
            issues = issues + (hook(resource) or [])
        return issues

    def guard(
        self,
        resource_type: str,
        resource_id: str,
        new: dict[str, Any] | None,
        current: StoredVersion | bool | None = False,
    ) -> Ticket:
        """The registered write guard's ticket for this write (service/write_guards.py);
        `current` False: not read yet (read here only for guarded types)."""
        guard = self.write_guards.get(resource_type)
        if guard is None:
            return NO_TICKET
        prior = (
            self.store.current(resource_type, resource_id)
            if current is False or current is True
            else current
        )
        return guard.before(resource_type, resource_id, new, prior)

    def _check_body_type(self, resource: dict[str, Any], resource_type: str) -> None:
        if resource.get("resourceType") != resource_type:
            raise BadRequest(
                f"resourceType {resource.get('resourceType')!r} does not match the URL type "
                f"{resource_type!r}"
            )

    # -- reads ---------------------------------------------------------------------------

    def read(self, resource_type: str, resource_id: str) -> StoredVersion:
        access.guard_read(resource_type)
        current = self._live(resource_type, resource_id)
        access.guard_read(resource_type, current)
        return current

    def _live(self, resource_type: str, resource_id: str) -> StoredVersion:
        self.check_type(resource_type)
        self.check_id(resource_id)
        current = self.store.current(resource_type, resource_id)
        if current is None:
            raise NotFound(f"{resource_type}/{resource_id} is not known")
        if current.deleted:
            access.guard_gone(
                resource_type,
                resource_id,
                lambda: self.store.version(resource_type, resource_id, current.version - 1),
            )
            raise Gone(
                f"{resource_type}/{resource_id} was deleted",
                headers={"ETag": current.etag},
            )
        return current

    def vread(self, resource_type: str, resource_id: str, version_id: str) -> StoredVersion:
        self.check_type(resource_type)
        access.guard_read(resource_type)
        self.check_id(resource_id)
        if not version_id.isdigit() or len(version_id) > 12:
            raise NotFound(f"{resource_type}/{resource_id} has no version {version_id[:20]!r}")
        stored = self.store.version(resource_type, resource_id, int(version_id))
        missing = f"{resource_type}/{resource_id} has no version {version_id}"
        if stored is None:
            raise NotFound(missing)
        if stored.deleted:
            version = stored.version
            access.guard_gone(
                resource_type,
                resource_id,
                lambda: self.store.version(resource_type, resource_id, version - 1),
                missing,
            )
            raise Gone(f"version {version_id} of {resource_type}/{resource_id} is a deletion")
        access.guard_read(resource_type, stored, missing)
        return stored

    def find(self, resource_type: str, query_string: str, purpose: str) -> list[StoredVersion]:
        # Clients (and official examples) often send ifNoneExist as "Patient?identifier=...".
        query_string = query_string.lstrip("?").removeprefix(f"{resource_type}?")
        if not query_string.strip("&"):
            raise BadRequest(f"{purpose}: no search criteria given")
        try:
            return self.finder(resource_type, query_string, MAX_CONDITIONAL_MATCHES)
        except BadRequest as error:
            raise BadRequest(f"{purpose}: {error.diagnostics}") from None

    # -- writes --------------------------------------------------------------------------

    def create(
        self,
        resource_type: str,
        resource: dict[str, Any],
        *,
        if_none_exist: str | None = None,
        resource_id: str | None = None,
        txn: str | None = None,
        validated: bool = False,
    ) -> WriteResult:
        self.check_type(resource_type)
        self._check_body_type(resource, resource_type)
        if if_none_exist:
            found = self._existing(resource_type, if_none_exist)
            if found is not None:
                return found
        warnings = [] if validated else self.validate(resource)
        access.guard_write("POST", resource_type, resource, None)
        if not if_none_exist:
            return self._insert(resource_type, resource, resource_id, txn, warnings)
        with self.claims.holding([(resource_type, if_none_exist)]) as held:
            # Again, now that no other writer with these criteria is between its search and
            # its write: whatever one of them created is committed and found here.
            found = self._existing(resource_type, if_none_exist)
            if found is not None:
                return found
            self.claims.check(held)
            return self._insert(resource_type, resource, resource_id, txn, warnings)

    def _existing(self, resource_type: str, if_none_exist: str) -> WriteResult | None:
        matches = self.find(resource_type, if_none_exist, "If-None-Exist")
        if len(matches) > 1:
            raise PreconditionFailed(
                f"If-None-Exist {if_none_exist!r} matches more than one {resource_type}"
            )
        return WriteResult(matches[0], created=False, existing=True) if matches else None

    def _insert(
        self,
        resource_type: str,
        resource: dict[str, Any],
        resource_id: str | None,
        txn: str | None,
        warnings: list[Issue],
    ) -> WriteResult:
        new_id = resource_id or str(uuid.uuid4())
        ticket = self.guard(resource_type, new_id, resource, None)
        try:
            stored = self.store.write(
                resource_type,
                new_id,
                resource,
                method="POST",
                must_not_exist=True,
                index=self.indexer(resource),
                txn=txn,
                fresh_id=resource_id is None,
            )
        except BaseException:
            ticket.abort()
            raise
        ticket.commit()
        return WriteResult(stored, created=True, warnings=warnings)

    def update(
        self,
        resource_type: str,
        resource_id: str,
        resource: dict[str, Any],
        *,
        if_match: str | None = None,
        txn: str | None = None,
        validated: bool = False,
        method: str = "PUT",
    ) -> WriteResult:
        self.check_type(resource_type)
        self.check_id(resource_id)
        self._check_body_type(resource, resource_type)
        if "id" not in resource:
            raise BadRequest("the resource in an update must have an id matching the URL")
        if resource["id"] != resource_id:
            raise BadRequest(
                f"resource id {resource['id']!r} does not match the URL id {resource_id!r}"
            )
        expected = parse_etag(if_match) if if_match else None
        warnings = [] if validated else self.validate(resource)
        read_before: tuple[StoredVersion | None] | None = None
        if access.active() is not None:
            current = self.store.current(resource_type, resource_id)
            access.guard_write(method, resource_type, resource, current)
            read_before = (current,)
        prior = read_before[0] if read_before is not None else False
        ticket = self.guard(resource_type, resource_id, resource, prior)
        try:
            stored = self.store.write(
                resource_type,
                resource_id,
                resource,
                method=method,
                expected_version=expected,
                index=self.indexer(resource),
                txn=txn,
                read_before=read_before,
            )
        except BaseException:
            ticket.abort()
            raise
        ticket.commit()
        return WriteResult(stored, created=stored.version == 1, warnings=warnings)

    def conditional_update(
        self, resource_type: str, query_string: str, resource: dict[str, Any]
    ) -> WriteResult:
        self.check_type(resource_type)
        with self.claims.holding([(resource_type, query_string)]) as held:
            matches = self.find(resource_type, query_string, "conditional update")
            if len(matches) > 1:
                raise PreconditionFailed(
                    f"conditional update matches more than one {resource_type}"
                )
            self.claims.check(held)
            if not matches:
                if "id" in resource:
                    return self.update(resource_type, str(resource["id"]), resource)
                return self.create(resource_type, resource)
            target = matches[0].resource_id
            if "id" in resource and resource["id"] != target:
                raise BadRequest(
                    f"resource id {resource['id']!r} differs from the matched resource {target!r}"
                )
            return self.update(resource_type, target, {**resource, "id": target})

    def repeats(self, resource_type: str) -> fhirpath_patch.Repeats | None:
        """Cardinality for FHIRPath Patch `add` (a new repeating element starts a list)."""
        models = getattr(self.validator, "models", None)  # test doubles may have no model
        return fhirpath_patch.repeats_from(models, resource_type) if models else None

    def patch(
        self,
        resource_type: str,
        resource_id: str,
        operations: Any,
        *,
        if_match: str | None = None,
        fhirpath: bool = False,
    ) -> WriteResult:
        """JSON Patch (a list of operations) or, with `fhirpath`, FHIRPath Patch (Parameters)."""
        current = self._live(resource_type, resource_id)
        # Hidden from the token: the same 404 as _live gives a missing id (and before If-Match
        # is compared, whose 412 would confirm the resource exists).
        access.guard_write("PUT", resource_type, None, current)
        expected = parse_etag(if_match) if if_match else current.version
        if current.version != expected:
            raise PreconditionFailed(
                f"{resource_type}/{resource_id} is at version {current.version}, not {expected}"
            )
        original = current.resource or {}  # _live: never a deletion marker
        if fhirpath:
            patched = fhirpath_patch.apply_patch(original, operations, self.repeats(resource_type))
        else:
            patched = _json_patch(original, operations)
        if patched.get("id") != resource_id or patched.get("resourceType") != resource_type:
            raise Unprocessable("a patch must not change resourceType or id")
        return self.update(
            resource_type,
            resource_id,
            patched,
            if_match=f'W/"{expected}"',
            method="PATCH",
        )

    def delete(
        self, resource_type: str, resource_id: str, *, txn: str | None = None
    ) -> StoredVersion | None:
        """Delete; deleting something absent or already deleted is a no-op (idempotent)."""
        self.check_type(resource_type)
        self.check_id(resource_id)
        current = self.store.current(resource_type, resource_id)
        access.guard_write("DELETE", resource_type, None, current)
        if current is None or current.deleted:
            return None
        ticket = self.guard(resource_type, resource_id, None, current)
        try:
            deleted = self.store.write(
                resource_type,
                resource_id,
                None,
                method="DELETE",
                expected_version=current.version,
                txn=txn,
                read_before=(current,),
            )
        except PreconditionFailed:
            ticket.abort()
            # Changed underneath us: delete whatever is current now.
            return self.delete(resource_type, resource_id, txn=txn)
        except BaseException:
            ticket.abort()
            raise
        ticket.commit()
        return deleted

    def conditional_delete(self, resource_type: str, query_string: str) -> StoredVersion | None:
        self.check_type(resource_type)
        with self.claims.holding([(resource_type, query_string)]) as held:
            matches = self.find(resource_type, query_string, "conditional delete")
            if len(matches) > 1:
                raise PreconditionFailed(
                    f"conditional delete matches more than one {resource_type}; be more specific"
                )
            self.claims.check(held)
            return self.delete(resource_type, matches[0].resource_id) if matches else None


def _json_patch(resource: dict[str, Any], operations: Any) -> dict[str, Any]:
    if not isinstance(operations, list):
        raise BadRequest("a JSON Patch body must be an array of operations")
    try:
        patched = jsonpatch.JsonPatch(operations).apply(resource)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
        raise Unprocessable(f"JSON Patch could not be applied: {exc}") from None
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise BadRequest(f"malformed JSON Patch: {exc}") from None
    if not isinstance(patched, dict):
        raise Unprocessable("JSON Patch must leave a resource (a JSON object)")
    return patched
