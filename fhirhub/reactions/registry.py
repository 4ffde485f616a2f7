"""Declared reactions, the queue the dispatcher fills, and the timer kind that runs them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from pymongo.errors import PyMongoError

from fhirhub.storage.outbox import OutboxStore
from fhirhub.storage.store import utc_now_ms
from fhirhub.storage.timers import Job
from fhirhub.subscriptions.events import ChangeEvent
from fhirhub.timers.model import Skip, TimerKind
from fhirhub.timers.registry import Timers

log = logging.getLogger(__name__)

KIND = "reaction"


@dataclass(frozen=True)
class Reaction:
    name: str
    types: frozenset[str]  # resource types whose changes it handles
    handler: Callable[[ChangeEvent], str | None]
    max_attempts: int = 10


@dataclass(frozen=True)
class Listener:
    """Called by the dispatcher with each batch's committed events of its types, in commit
    order, before the batch's reaction jobs are planned: for dropping what reactions cache
    (quick and idempotent: a crash repeats the batch). A database error retries the batch;
    any other error is logged and the batch goes on."""

    name: str
    types: frozenset[str]
    handler: Callable[[list[ChangeEvent]], None]


class ReactionRegistry:
    def __init__(self) -> None:
        self._reactions: dict[str, Reaction] = {}
        self.listeners: list[Listener] = []

    def register(self, reaction: Reaction) -> None:
        if reaction.name in self._reactions:
            raise ValueError(f"reaction {reaction.name!r} is registered twice")
        self._reactions[reaction.name] = reaction

    def listen(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def get(self, name: str) -> Reaction | None:
        return self._reactions.get(name)

    def for_type(self, resource_type: str) -> list[Reaction]:
        return [r for r in self._reactions.values() if resource_type in r.types]


class ReactionQueue:
    """Called by the dispatcher with the committed events of a batch, before it marks them
    published: a crash in between repeats the batch, and the jobs' keys make that
    harmless."""

    def __init__(self, registry: ReactionRegistry, timers: Timers):
        self.registry = registry
        self.timers = timers

    def enqueue(self, events: list[ChangeEvent]) -> int:
        for listener in self.registry.listeners:
            mine = [e for e in events if e.resource_type in listener.types]
            if not mine:
                continue
            try:
                listener.handler(mine)
            except PyMongoError:
                raise
            except Exception:
                log.exception("reaction listener %s", listener.name)
        jobs = [
            (f"{KIND}:{r.name}:{e.key}", KIND, utc_now_ms(), {"reaction": r.name, "event": e.key})
            for e in events
            for r in self.registry.for_type(e.resource_type)
        ]
        self.timers.plan_once(jobs)
        return len(jobs)


def reaction_kind(registry: ReactionRegistry, outbox: OutboxStore) -> TimerKind:
    """The timer kind that runs one reaction on one event."""

    def run(job: Job) -> str | None:
        reaction = registry.get(str(job.payload.get("reaction")))
        if reaction is None:
            raise Skip(f"no reaction {job.payload.get('reaction')!r} is registered")
        doc = outbox.load(str(job.payload.get("event")))
        if doc is None:
            raise Skip(f"event {job.payload.get('event')} no longer exists")
        previous = outbox.previous_resource(doc) if doc.get("del") else None
        return reaction.handler(ChangeEvent.from_history(doc, previous))

    def ended(job: Job, state: str, reason: str) -> None:
        log.error("reaction %s ended %s: %s", job.key, state, reason)

    return TimerKind(
        KIND,
        run,
        on_end=ended,
        max_attempts=10,
        retry_base=timedelta(seconds=2),
        retry_cap=timedelta(minutes=5),
    )
