"""POST [base] with a batch or transaction Bundle."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fhirhub.fhir.errors import FhirError
from fhirhub.fhir.references import is_conditional, rewrite_references
from fhirhub.service.batch_writes import error_entry, write_plain_entries
from fhirhub.service.bundle_entries import EntryOp, parse_bundle, parse_entry, unique_full_urls
from fhirhub.service.bundle_limits import BundleLimits
from fhirhub.service.resources import ResourceService, WriteResult
from fhirhub.service.transaction import TransactionProcessor, search_entry, version_entry
from fhirhub.storage.store import fhir_instant

# (resource type, query parameters, self path) -> searchset Bundle
Searcher = Callable[[str, list[tuple[str, str]], str], dict[str, Any]]


class BundleService:
    def __init__(
        self,
        resources: ResourceService,
        base: str,
        searcher: Searcher | None = None,
        limits: Callable[[], BundleLimits] = BundleLimits,
    ):
        self.resources = resources
        self.base = base
        self.searcher = searcher
        self.limits = limits  # a fresh one (its clock starts) per Bundle; none by default

    def process(self, bundle: dict[str, Any]) -> dict[str, Any]:
        limits = self.limits()
        entries = bundle.get("entry") if isinstance(bundle, dict) else None
        if isinstance(entries, list):
            limits.check_size(len(entries))
        unique_full_urls(bundle)
        kind = bundle.get("type")
        if kind == "batch" and isinstance(entries, list):
            return self.batch(entries, limits)
        kind, ops = parse_bundle(bundle, self.base)
        limits.check_work(ops)
        return TransactionProcessor(self.resources, self.base, self.searcher, limits).run(ops)

    def batch(self, entries: list[Any], limits: BundleLimits | None = None) -> dict[str, Any]:
        limits = limits or BundleLimits()
        responses: dict[int, dict[str, Any]] = {}
        ops: list[EntryOp] = []
        for index, entry in enumerate(entries):
            try:
                ops.append(parse_entry(index, entry, self.base))
            except FhirError as error:
                responses[index] = error_entry(error)
        limits.check_work(ops)
        written, leftover = write_plain_entries(self.resources, self.base, ops)
        responses.update(written)
        for op in sorted(leftover, key=lambda op: op.index):
            if limits.expired():
                responses[op.index] = error_entry(limits.timeout_error(f"{op.where} not run"))
                continue
            try:
                responses[op.index] = self._batch_entry(op)
            except FhirError as error:
                responses[op.index] = error_entry(error)
        return {
            "resourceType": "Bundle",
            "type": "batch-response",
            "entry": [responses[index] for index in range(len(entries))],
        }

    def _batch_entry(self, op: EntryOp) -> dict[str, Any]:
        service = self.resources
        service.check_type(op.resource_type)
        resource = self._resolve_conditional_refs(op.resource) if op.resource else None
        if op.method in ("GET", "HEAD"):
            if op.resource_id is None:
                return search_entry(self.searcher, op)
            stored = (
                service.vread(op.resource_type, op.resource_id, op.version_id)
                if op.version_id
                else service.read(op.resource_type, op.resource_id)
            )
            return {
                "resource": stored.resource,
                "response": {
                    "status": "200 OK",
                    "etag": stored.etag,
                    "lastModified": fhir_instant(stored.last_updated),
                },
            }
        if op.method == "DELETE":
            if op.resource_id:
                service.delete(op.resource_type, op.resource_id)
            else:
                service.conditional_delete(op.resource_type, op.query)
            return {"response": {"status": "204 No Content"}}
        if op.method == "POST":
            assert resource is not None
            result = service.create(op.resource_type, resource, if_none_exist=op.if_none_exist)
        elif op.method == "PUT":
            assert resource is not None
            if op.resource_id:
                result = service.update(
                    op.resource_type, op.resource_id, resource, if_match=op.if_match
                )
            else:
                result = service.conditional_update(op.resource_type, op.query, resource)
        else:
            raise FhirError(
                "PATCH is supported in transactions, not batches, here", 400, "not-supported"
            )
        return self._write_entry(result)

    def _write_entry(self, result: WriteResult) -> dict[str, Any]:
        return version_entry(201 if result.created else 200, result.stored)

    def _resolve_conditional_refs(self, resource: dict[str, Any]) -> dict[str, Any]:
        processor = TransactionProcessor(self.resources, self.base)

        def replace(reference: str) -> str | None:
            return (
                processor.resolve_conditional_reference(reference)
                if is_conditional(reference)
                else None
            )

        rewritten: dict[str, Any] = rewrite_references(resource, replace)
        return rewritten
