"""What the worker does after referral changes commit.

- A referral Task changed: its Consent follows its state (the guard wrote it already
  unless it failed between the two writes; this makes it so either way).
- The specialist's consult note (DocumentReference with context.related, Composition with
  event.detail naming the referral ServiceRequest) or new order (ServiceRequest or
  MedicationRequest basedOn it), written by the Task's owner: it is added to the Task's
  output, routed back to the requester as a Communication (payload: the note or order),
  and a final note completes the Task. Every write is keyed by what caused it, so a
  repeated event changes nothing.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fhirhub.coordination.referrals.access import Finder
from fhirhub.coordination.referrals.guard import ConsentSync, Read
from fhirhub.coordination.referrals.rules import (
    FULFILL,
    OPEN,
    TASK_CODES,
    is_referral_task,
    reference,
)
from fhirhub.fhir.errors import Unprocessable
from fhirhub.storage.store import fhir_instant
from fhirhub.subscriptions.events import ChangeEvent

log = logging.getLogger(__name__)
Resource = dict[str, Any]
Write = Callable[[Resource], None]
ROUTED = frozenset({"DocumentReference", "Composition", "ServiceRequest", "MedicationRequest"})
NAMESPACE = uuid.UUID("2f6e1d4a-7c3b-4a59-8e0d-5b9c1a2f3e64")
CATEGORY = "http://terminology.hl7.org/CodeSystem/communication-category"


def referral_links(resource: Resource) -> list[str]:
    """The ServiceRequests a note or order says it answers (pure)."""
    kind = resource.get("resourceType")
    if kind == "DocumentReference":
        refs = [reference(r) for r in (resource.get("context") or {}).get("related") or []]
    elif kind == "Composition":
        refs = [reference(d) for e in resource.get("event") or [] for d in e.get("detail") or []]
    else:
        refs = [reference(r) for r in resource.get("basedOn") or []]
    return [r for r in refs if r and r.startswith("ServiceRequest/")]


def authors(resource: Resource) -> set[str]:
    if resource.get("resourceType") in ("DocumentReference", "Composition"):
        return {r for a in resource.get("author") or [] if (r := reference(a))}
    found = reference(resource.get("requester"))
    return {found} if found else set()


def is_final(resource: Resource) -> bool:
    if resource.get("resourceType") == "DocumentReference":
        return resource.get("docStatus") == "final" and resource.get("status") == "current"
    return resource.get("resourceType") == "Composition" and resource.get("status") == "final"


def routed_task(task: Resource, item: str, final: bool, now: datetime) -> Resource | None:
    """The Task with `item` among its outputs (completed when `final`); None if unchanged."""
    outputs = list(task.get("output") or [])
    listed = any(reference(o.get("valueReference")) == item for o in outputs)
    if listed and (not final or task.get("status") == "completed"):
        return None
    updated = dict(task)
    if not listed:
        label = (
            "consult note"
            if item.split("/")[0] in ("DocumentReference", "Composition")
            else "order"
        )
        outputs.append({"type": {"text": label}, "valueReference": {"reference": item}})
        updated["output"] = outputs
    if final:
        updated["status"] = "completed"
        updated["businessStatus"] = {"text": "consult note received"}
        updated["executionPeriod"] = {
            **(task.get("executionPeriod") or {}),
            "end": fhir_instant(now),
        }
    return updated


def routing_message(task: Resource, item: str, now: datetime) -> Resource | None:
    requester = reference(task.get("requester"))
    if requester is None:
        return None
    return {
        "resourceType": "Communication",
        "id": str(uuid.uuid5(NAMESPACE, f"{task['id']}|{item}")),
        "status": "completed",
        "category": [{"coding": [{"system": CATEGORY, "code": "notification"}]}],
        "subject": task.get("for"),
        "about": [{"reference": f"Task/{task['id']}"}, task.get("focus")],
        "topic": {"text": "Referral result"},
        "sent": fhir_instant(now),
        "recipient": [{"reference": requester}],
        "sender": task.get("owner"),
        "payload": [{"contentReference": {"reference": item}}],
    }


class Routing:
    def __init__(
        self,
        read: Read,
        search: Finder,
        write: Write,
        sync: ConsentSync,
        clock: Callable[[], datetime],
    ):
        self.read = read
        self.search = search
        self.write = write
        self.sync = sync
        self.clock = clock

    def task_changed(self, event: ChangeEvent) -> str:
        task = self.read("Task", event.resource_id)  # the latest decides, not the event's
        if task is None or not is_referral_task(task):
            return "not a referral"
        return self.sync(task)

    def output_written(self, event: ChangeEvent) -> str:
        resource = self.read(event.resource_type, event.resource_id)
        if resource is None:
            return "gone"
        item = event.reference
        done = []
        for link in referral_links(resource):
            tasks = self.search.find_resources("Task", f"focus={link}&code={TASK_CODES}|{FULFILL}")
            for task in tasks:
                if task.get("status") not in OPEN or not self._by_owner(task, resource):
                    continue
                now = self.clock()
                message = routing_message(task, item, now)
                if message is not None and self.read("Communication", message["id"]) is None:
                    try:
                        self.write(message)
                    except Unprocessable as refused:  # e.g. a requester no longer entitled
                        log.warning("referral result for Task/%s not sent: %s", task["id"], refused)
                changed = self._advance(task, item, is_final(resource), now)
                done.append(f"Task/{task['id']}{' completed' if changed else ''}")
        return "routed to " + ", ".join(done) if done else "no open referral"

    def _advance(self, task: Resource, item: str, final: bool, now: datetime) -> bool:
        updated = routed_task(task, item, final, now)
        if updated is None:
            return False
        if final and task.get("status") == "accepted":
            self.write({**task, "status": "in-progress"})  # the state machine's one way
        self.write(updated)
        return final

    def _by_owner(self, task: Resource, resource: Resource) -> bool:
        owner = reference(task.get("owner"))
        mine = {owner}
        if owner and owner.startswith("PractitionerRole/"):
            role = self.read("PractitionerRole", owner.split("/")[1])
            mine.add(reference((role or {}).get("practitioner")))
        return bool(authors(resource) & mine)
