"""Batch Bundles: the plain creates and updates among the entries, written together.

Batch entries may not depend on each other (R4 http.html#transaction), so each plain write
(POST without ifNoneExist, PUT to an id) is checked on its own, failing on its own, and the
valid ones are written in one staged transaction: a few round trips for the lot instead of
several per entry (NDJSON imports arrive as such batches). Should that write collide with a
concurrent change, the staged transaction is compensated and those entries go the one-by-one
way like every other entry.
"""

from __future__ import annotations

from typing import Any

from fhirhub.fhir.errors import FhirError, Issue
from fhirhub.fhir.operation_outcome import outcome
from fhirhub.service.bundle_entries import EntryOp
from fhirhub.service.resources import ResourceService
from fhirhub.service.transaction import TransactionProcessor, written_entry
from fhirhub.storage.store import PlannedWrite
from fhirhub.storage.transactions import StagedTransaction

# Fewer plain writes than this are not worth a transaction log record.
MIN_WRITES = 3

Entry = dict[str, Any]


def is_plain_write(op: EntryOp) -> bool:
    if op.method == "POST":
        return not op.if_none_exist and op.resource_id is None
    return op.method == "PUT" and bool(op.resource_id) and not op.query


def error_entry(error: FhirError) -> Entry:
    issues = [Issue(i.code, i.diagnostics, i.severity, i.expression) for i in error.issues]
    return {"response": {"status": str(error.status), "outcome": outcome(issues)}}


def write_plain_entries(
    resources: ResourceService, base: str, ops: list[EntryOp]
) -> tuple[dict[int, Entry], list[EntryOp]]:
    """Responses by entry index for the plain writes handled here, and the entries left for
    one-by-one processing (everything else, repeated targets, or all after a collision)."""
    candidates = [op for op in ops if is_plain_write(op)]
    if len(candidates) < MIN_WRITES:
        return {}, ops
    processor = TransactionProcessor(resources, base)
    responses: dict[int, Entry] = {}
    plans: list[PlannedWrite] = []
    planned: list[EntryOp] = []
    leftover = [op for op in ops if not is_plain_write(op)]
    targets: set[str] = set()
    processor.prefetch(
        [
            (op.resource_type, op.resource_id)
            for op in candidates
            if op.method == "PUT" and op.resource_id
        ]
    )
    for op in candidates:
        if op.method == "PUT":
            key = f"{op.resource_type}/{op.resource_id}"
            if key in targets:
                leftover.append(op)  # the same resource twice: in order, one at a time
                continue
            targets.add(key)
        try:
            plan = processor.plan_alone(op)
        except FhirError as error:
            responses[op.index] = error_entry(error)
            continue
        if plan is None:
            leftover.append(op)
            continue
        plans.append(plan)
        planned.append(op)
    if not plans:
        processor.tickets.abort()
        return responses, leftover
    try:
        stored = StagedTransaction(resources.store).apply(plans)
    except FhirError:
        processor.tickets.abort()
        return responses, leftover + planned  # a concurrent change: nothing was kept
    except BaseException:
        processor.tickets.abort()
        raise
    processor.tickets.commit()
    for op, version in zip(planned, stored, strict=True):
        responses[op.index] = written_entry(op.method, version)
    return responses, leftover
