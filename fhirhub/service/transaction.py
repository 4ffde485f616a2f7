"""Transaction Bundles: all-or-nothing, per R4 http.html#transaction.

Everything that can fail is decided before the first visible write (identities,
conditional matches, reference rewriting, validation, If-Match); the writes are then
staged and committed through the transaction log, which compensates if anything breaks
midway. Only the versions of new resources, invisible until the commit, may go in earlier.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import jsonpatch

from fhirhub.fhir import fhirpath_patch
from fhirhub.fhir.errors import BadRequest, FhirError, NotFound, PreconditionFailed
from fhirhub.fhir.json_body import parse_json
from fhirhub.fhir.references import is_conditional, rewrite_references
from fhirhub.service import access
from fhirhub.service.bundle_entries import ORDER, EntryOp
from fhirhub.service.bundle_limits import BundleLimits
from fhirhub.service.resources import ResourceService, parse_etag
from fhirhub.service.write_guards import Tickets
from fhirhub.storage.conditional_claims import ConditionalClaim, normalised
from fhirhub.storage.documents import StoredVersion
from fhirhub.storage.store import PlannedWrite, fhir_instant
from fhirhub.storage.transactions import StagedTransaction

AHEAD_CHUNK = 100  # creates whose versions are written while the rest is still checked
STATUS_TEXT = {200: "200 OK", 201: "201 Created", 204: "204 No Content", 404: "404 Not Found"}


@dataclass
class Target:
    op: EntryOp
    resource_id: str | None  # None: nothing to write (no match for a conditional delete)
    existing: bool = False  # conditional create matched: no write
    resource: dict[str, Any] | None = None


def _fail(op: EntryOp, error: FhirError) -> FhirError:
    error.diagnostics = f"{op.where}: {error.diagnostics}"
    error.issues = [
        type(i)(i.code, f"{op.where}: {i.diagnostics}", i.severity, i.expression)
        for i in error.issues
    ]
    return error


class TransactionProcessor:
    def __init__(
        self,
        resources: ResourceService,
        base: str,
        searcher: Any = None,
        limits: BundleLimits | None = None,
    ):
        self.limits = limits or BundleLimits()
        self.searcher = searcher
        self.resources = resources
        self.store = resources.store
        self.base = base
        self.conditional_cache: dict[str, str] = {}
        self.prefetched: dict[tuple[str, str], StoredVersion | None] = {}
        self.tickets = Tickets()  # write guards (booking claims), settled after the commit
        self.held: list[ConditionalClaim] = []
        # normalised ifNoneExist criteria -> the id this transaction creates for them: a
        # second entry with the same criteria finds that resource, as it would in sequence.
        self.created_for: dict[str, str] = {}

    def run(self, ops: list[EntryOp]) -> dict[str, Any]:
        # Every conditional entry's criteria are claimed for the whole transaction, all at
        # once in one order (storage/conditional_claims.py): no concurrent conditional write
        # with the same criteria can slip between this transaction's search and its commit.
        conditional = [(op.resource_type, c) for op in ops if (c := _criteria(op))]
        with self.resources.claims.holding(conditional) as held:
            self.held = held
            return self._run(ops)

    def _run(self, ops: list[EntryOp]) -> dict[str, Any]:
        ordered = sorted(ops, key=lambda op: ORDER[op.method])
        mapping: dict[str, str] = {}
        targets: list[Target] = []
        seen: set[str] = set()
        for op in ordered:
            self.limits.check_time("the transaction was not applied")
            try:
                target = self._resolve(op, mapping)
            except FhirError as error:
                raise _fail(op, error) from None
            if target.resource_id and op.method not in ("GET", "HEAD") and not target.existing:
                key = f"{op.resource_type}/{target.resource_id}"
                if key in seen:
                    raise BadRequest(f"{op.where}: {key} appears more than once in the transaction")
                seen.add(key)
            targets.append(target)
        plans: list[PlannedWrite] = []
        planned: list[Target] = []
        self.prefetch(
            [
                (t.op.resource_type, t.resource_id)
                for t in targets
                if t.resource_id and not t.existing and t.op.method in ("PUT", "PATCH", "DELETE")
            ]
        )
        staged = StagedTransaction(self.store)
        creates: list[PlannedWrite] = []
        try:
            for target in targets:
                self.limits.check_time("the transaction was not applied")
                try:
                    plan = self._plan(target, mapping)
                except FhirError as error:
                    raise _fail(target.op, error) from None
                if plan is None:
                    continue
                plans.append(plan)
                planned.append(target)
                if plan.prior_version == 0:
                    creates.append(plan)
                if len(creates) >= AHEAD_CHUNK:
                    # Their versions go in while the next entries are checked (invisible
                    # until the commit; see StagedTransaction).
                    staged.stage_ahead(creates)
                    creates = []
        except BaseException:
            staged.abort()
            self.tickets.abort()
            raise
        if plans:
            try:
                self.limits.check_time("the transaction was not applied")
                self.resources.claims.check(self.held)
            except BaseException:
                staged.abort()
                self.tickets.abort()
                raise
        try:
            stored = staged.apply(plans) if plans else []
        except BaseException:
            self.tickets.abort()
            raise
        self.tickets.commit()
        responses: dict[int, dict[str, Any]] = {}
        for target, version in zip(planned, stored, strict=True):
            responses[target.op.index] = written_entry(target.op.method, version)
        for target in targets:
            if target.op.index in responses:
                continue
            responses[target.op.index] = self._non_write_response(target)
        return {
            "resourceType": "Bundle",
            "type": "transaction-response",
            "entry": [responses[op.index] for op in ops],
        }

    def prefetch(self, keys: list[tuple[str, str]]) -> None:
        """Read these current versions ahead, in parallel (a stale one only makes the staged
        write collide, never overwrite)."""
        self.prefetched.update(self.store.current_many(keys))

    def _current(self, resource_type: str, resource_id: str) -> StoredVersion | None:
        key = (resource_type, resource_id)
        if key in self.prefetched:
            return self.prefetched.pop(key)
        return self.store.current(resource_type, resource_id)

    def plan_alone(self, op: EntryOp) -> PlannedWrite | None:
        """One entry on its own, as in a batch: identity, references, validation, If-Match."""
        return self._plan(self._resolve(op, {}), {})

    # -- phase 1: identities --------------------------------------------------------------

    def _resolve(self, op: EntryOp, mapping: dict[str, str]) -> Target:
        self.resources.check_type(op.resource_type)
        if op.resource_id:
            self.resources.check_id(op.resource_id)
        if op.method in ("GET", "HEAD"):
            return Target(op, op.resource_id)
        if op.method == "POST":
            if op.resource_id:
                raise BadRequest("POST url must be a resource type, not an instance")
            criteria = None
            if op.if_none_exist:
                criteria = normalised(op.resource_type, op.if_none_exist)
                matches = self.resources.find(op.resource_type, op.if_none_exist, "ifNoneExist")
                if len(matches) > 1:
                    raise PreconditionFailed(f"ifNoneExist {op.if_none_exist!r} matches several")
                if matches:
                    self._map(op, mapping, matches[0].resource_id)
                    return Target(op, matches[0].resource_id, existing=True)
                if criteria in self.created_for:
                    self._map(op, mapping, self.created_for[criteria])
                    return Target(op, self.created_for[criteria], existing=True)
            new_id = str(uuid.uuid4())
            if criteria is not None:
                self.created_for[criteria] = new_id
            self._map(op, mapping, new_id)
            return Target(op, new_id)
        if op.resource_id is None:
            if not op.query:
                raise BadRequest(f"{op.method} needs a resource id or search criteria")
            purpose = "conditional " + ("update" if op.method == "PUT" else "delete")
            matches = self.resources.find(op.resource_type, op.query, purpose)
            if len(matches) > 1:
                raise PreconditionFailed(f"{purpose} criteria match more than one resource")
            if matches:
                resolved: str | None = matches[0].resource_id
            elif op.method == "PUT":
                given = (op.resource or {}).get("id")
                resolved = str(given) if given else str(uuid.uuid4())
            else:
                resolved = None
            if resolved and op.method == "PUT":
                self._map(op, mapping, resolved)
            return Target(op, resolved)
        if op.method == "PUT":
            self._map(op, mapping, op.resource_id)
        return Target(op, op.resource_id)

    def _map(self, op: EntryOp, mapping: dict[str, str], resource_id: str) -> None:
        if op.full_url:
            mapping[op.full_url] = f"{op.resource_type}/{resource_id}"

    # -- phase 2: references, validation, preconditions -------------------------------------

    def _rewrite(self, resource: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
        def replace(reference: str) -> str | None:
            if reference in mapping:
                return mapping[reference]
            if is_conditional(reference):
                return self.resolve_conditional_reference(reference)
            return None

        rewritten: dict[str, Any] = rewrite_references(resource, replace)
        return rewritten

    def resolve_conditional_reference(self, reference: str) -> str:
        if reference not in self.conditional_cache:
            resource_type, query = reference.split("?", 1)
            self.resources.check_type(resource_type)
            matches = self.resources.find(resource_type, query, f"reference {reference}")
            if len(matches) != 1:
                found = "no" if not matches else "several"
                raise PreconditionFailed(
                    f"conditional reference {reference!r} matches {found} resources"
                )
            self.conditional_cache[reference] = f"{resource_type}/{matches[0].resource_id}"
        return self.conditional_cache[reference]

    def _plan(self, target: Target, mapping: dict[str, str]) -> PlannedWrite | None:
        op = target.op
        if op.method in ("GET", "HEAD") or target.existing or target.resource_id is None:
            return None
        # A POST got a fresh random id, so there is nothing to read back.
        current = (
            None if op.method == "POST" else self._current(op.resource_type, target.resource_id)
        )
        prior = current.version if current else 0
        live = current is not None and not current.deleted
        if op.if_match and (not live or prior != parse_etag(op.if_match)):
            raise PreconditionFailed(f"ifMatch {op.if_match} does not match version {prior}")
        if op.method == "DELETE":
            access.guard_write("DELETE", op.resource_type, None, current)
            if not live:
                return None
            self.tickets.add(
                self.resources.guard(op.resource_type, target.resource_id, None, current)
            )
            return PlannedWrite(op.resource_type, target.resource_id, None, "DELETE", prior, {})
        if op.method == "PATCH":
            if not live or current is None or current.resource is None:
                raise NotFound(f"{op.resource_type}/{target.resource_id} does not exist")
            resource = _apply_patch(op, current.resource, self.resources.repeats(op.resource_type))
        else:
            assert op.resource is not None
            resource = dict(op.resource)
            if resource.get("resourceType") != op.resource_type:
                raise BadRequest(f"resourceType must be {op.resource_type}")
            if op.method == "PUT":
                if op.resource_id and resource.get("id") != op.resource_id:
                    raise BadRequest(f"resource id must be {op.resource_id!r} to match the url")
                resource["id"] = target.resource_id
            else:
                resource.pop("id", None)
        resource = self._rewrite(resource, mapping)
        self.resources.validate(resource)
        access.guard_write(op.method, op.resource_type, resource, current)
        self.tickets.add(
            self.resources.guard(op.resource_type, target.resource_id, resource, current)
        )
        target.resource = resource
        return PlannedWrite(
            op.resource_type,
            target.resource_id,
            resource,
            op.method,
            prior,
            self.resources.indexer(resource),
        )

    # -- responses ------------------------------------------------------------------------

    def _non_write_response(self, target: Target) -> dict[str, Any]:
        op = target.op
        if op.method in ("GET", "HEAD"):
            if op.resource_id is None:
                return search_entry(self.searcher, op)
            stored = (
                self.resources.vread(op.resource_type, op.resource_id, op.version_id)
                if op.version_id
                else self.resources.read(op.resource_type, op.resource_id)
            )
            entry = version_entry(200, stored)
            entry["resource"] = stored.resource
            return entry
        if target.existing and target.resource_id:
            current = self.store.current(op.resource_type, target.resource_id)
            assert current is not None
            return version_entry(200, current)
        return {"response": {"status": "204 No Content"}}


def _criteria(op: EntryOp) -> str | None:
    """The criteria of a conditional write entry (None for anything else)."""
    if op.method == "POST":
        return op.if_none_exist
    if op.method in ("PUT", "PATCH", "DELETE") and op.resource_id is None and op.query:
        return op.query
    return None


def version_entry(status: int, stored: StoredVersion) -> dict[str, Any]:
    """A batch/transaction response entry naming one version."""
    return {
        "response": {
            "status": STATUS_TEXT.get(status, str(status)),
            "location": f"{stored.resource_type}/{stored.resource_id}/_history/{stored.version}",
            "etag": stored.etag,
            "lastModified": fhir_instant(stored.last_updated),
        }
    }


def written_entry(method: str, version: StoredVersion) -> dict[str, Any]:
    """The response entry for a version a batch or transaction just wrote."""
    if version.deleted:
        return version_entry(204, version)
    return version_entry(201 if method == "POST" or version.version == 1 else 200, version)


def search_entry(searcher: Any, op: EntryOp) -> dict[str, Any]:
    """A GET entry with search parameters: the searchset Bundle as the entry's resource."""
    if searcher is None:
        raise BadRequest(f"{op.where}: search entries are not supported here")
    pairs = parse_qsl(op.query, keep_blank_values=True)
    bundle = searcher(op.resource_type, pairs, op.resource_type)
    return {"resource": bundle, "response": {"status": "200 OK"}}


def _apply_patch(
    op: EntryOp, current: dict[str, Any], repeats: fhirpath_patch.Repeats | None
) -> dict[str, Any]:
    binary = op.resource or {}
    if binary.get("resourceType") == "Parameters":
        return fhirpath_patch.apply_patch(current, binary, repeats)
    if binary.get("resourceType") != "Binary" or "json-patch" not in str(
        binary.get("contentType", "")
    ):
        raise BadRequest(
            "PATCH entries need a Parameters resource (FHIRPath Patch) or a Binary with "
            "contentType application/json-patch+json"
        )
    try:
        data = base64.b64decode(str(binary.get("data", "")), validate=True)
    except ValueError:
        raise BadRequest("PATCH entry: Binary.data is not valid base64") from None
    operations = parse_json(data)  # the checks of a request body (json_body.py)
    try:
        patched = jsonpatch.JsonPatch(operations).apply(current)
    except (ValueError, TypeError, jsonpatch.JsonPatchException, jsonpatch.JsonPointerException):
        raise BadRequest("PATCH entry: the JSON Patch could not be decoded or applied") from None
    if not isinstance(patched, dict):
        raise BadRequest("PATCH entry must leave a resource")
    return patched
