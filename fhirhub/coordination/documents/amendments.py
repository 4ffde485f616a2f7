"""Amendments of clinical notes: `relatesTo` on DocumentReference and Composition.

A relatesTo target must be a note of the same patient on this server (422 otherwise). A
DocumentReference that `replaces` another supersedes it: the target, which must still be
current, becomes `superseded` once the replacement is durable (written by the guard's
ticket; the reaction on the replacement's event repeats it if that write was lost).
Composition has no superseded status (R4): its relatesTo is checked, the target is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fhirhub.coordination.referrals.rules import reference
from fhirhub.fhir.errors import Unprocessable
from fhirhub.service import access
from fhirhub.service.write_guards import NO_TICKET, Ticket
from fhirhub.storage.documents import StoredVersion, live_resource
from fhirhub.subscriptions.events import ChangeEvent

log = logging.getLogger(__name__)
Resource = dict[str, Any]
Read = Callable[[str, str], "Resource | None"]
Write = Callable[[Resource], None]


def targets(note: Resource) -> list[tuple[str, str]]:
    """(code, "Type/id") of each relatesTo (DocumentReference.target, Composition's
    targetReference)."""
    found = []
    for item in note.get("relatesTo") or []:
        ref = reference(
            item.get("target")
            if note.get("resourceType") == "DocumentReference"
            else item.get("targetReference")
        )
        if ref:
            found.append((str(item.get("code")), ref))
    return found


@dataclass
class Supersede:
    read: Read
    write: Write

    def __call__(self, note: Resource) -> list[str]:
        done = []
        for code, ref in targets(note):
            if code != "replaces" or not ref.startswith("DocumentReference/"):
                continue
            old = self.read("DocumentReference", ref.split("/")[1])
            if old is not None and old.get("status") == "current":
                with access.unrestricted():
                    self.write({**old, "status": "superseded"})
                done.append(ref)
        return done

    def commit_later(self, note: Resource) -> Ticket:
        supersede = self

        class _Ticket:
            def commit(self) -> None:
                try:
                    supersede(note)
                except Exception:
                    log.exception("superseding left to the worker")

            def abort(self) -> None:
                return None

        return _Ticket()

    def reaction(self, event: ChangeEvent) -> str:
        note = self.read(event.resource_type, event.resource_id)
        if note is None or note.get("resourceType") != "DocumentReference":
            return "nothing to supersede"
        return "superseded " + ", ".join(self(note)) if targets(note) else "no relatesTo"


class AmendmentGuard:
    def __init__(self, read: Read, supersede: Supersede):
        self.read = read
        self.supersede = supersede

    def before(
        self,
        resource_type: str,
        resource_id: str,
        new: Resource | None,
        current: StoredVersion | None,
    ) -> Ticket:
        if new is None or not targets(new):
            return NO_TICKET
        old = live_resource(current)
        before = set(targets(old)) if old else set()
        problems = []
        for code, ref in targets(new):
            if (code, ref) in before:
                continue
            kind, _, rid = ref.partition("/")
            target = self.read(kind, rid) if kind == resource_type else None
            if target is None:
                problems.append(f"relatesTo {ref} is not a {resource_type} on this server")
            elif reference(target.get("subject")) != reference(new.get("subject")):
                problems.append(f"relatesTo {ref} is about another subject")
            elif code == "replaces" and target.get("status") not in ("current", "final", "amended"):
                problems.append(f"{ref} was already replaced ({target.get('status')})")
        if problems:
            raise Unprocessable("; ".join(problems), code="business-rule")
        return (
            self.supersede.commit_later(new) if resource_type == "DocumentReference" else NO_TICKET
        )
