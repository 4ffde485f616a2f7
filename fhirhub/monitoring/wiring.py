"""Plugging monitoring into the hub's mechanisms (called by the composition root).

The context is built on first use: the timer kinds are registered while the hub's timers
are being built, and the context needs those timers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fhirhub.monitoring.alerts.timers import kinds
from fhirhub.monitoring.context import Context
from fhirhub.monitoring.enrolment.cache import WATCHED, EnrolmentCache, invalidator
from fhirhub.monitoring.reactions import on_observation, on_task
from fhirhub.monitoring.risk.reactions import on_encounter, on_questionnaire_response
from fhirhub.monitoring.rules import table as knowledge
from fhirhub.operations.registry import OperationRegistry
from fhirhub.reactions.registry import Listener, Reaction, ReactionRegistry
from fhirhub.storage.generations import GenerationStore
from fhirhub.storage.store import utc_now_ms
from fhirhub.timers.registry import TimerRegistry

if TYPE_CHECKING:
    from fhirhub.hub import Hub

KEY = "_monitoring_context"
MORSE_QUESTIONNAIRE = Path(__file__).parent / "knowledge" / "morse-questionnaire.json"


def context(hub: Hub) -> Context:
    found = hub.__dict__.get(KEY)
    if found is None:
        found = Context(
            hub.resources,
            hub.search,
            hub.timers,
            hub.timer_store,
            hub.resources.claims,
            knowledge.load(hub.settings.monitoring_rules),
            utc_now_ms,
            _channels(hub),
            EnrolmentCache(GenerationStore(hub.db)),
        )
        hub.__dict__[KEY] = found
    return found


def _channels(hub: Hub) -> Any:
    try:
        return hub.channels
    except Exception:  # no channel configured is fine: reminders are then not sent
        return None


def _lazy(hub: Hub, handler: Callable[[Context, Any], Any]) -> Callable[[Any], Any]:
    return lambda item: handler(context(hub), item)


def _version(hub: Hub) -> Callable[[str, str, int], dict[str, Any] | None]:
    def read(resource_type: str, resource_id: str, version: int) -> dict[str, Any] | None:
        stored = hub.store.version(resource_type, resource_id, version)
        return None if stored is None or stored.deleted else stored.resource

    return read


def register_reactions(hub: Hub, registry: ReactionRegistry) -> None:
    registry.listen(
        Listener(
            "monitoring-enrolment-cache",
            WATCHED,
            invalidator(GenerationStore(hub.db), _version(hub)),
        )
    )
    registry.register(
        Reaction("monitoring-readings", frozenset({"Observation"}), _lazy(hub, on_observation))
    )
    registry.register(Reaction("monitoring-alert-tasks", frozenset({"Task"}), _lazy(hub, on_task)))
    registry.register(
        Reaction(
            "monitoring-morse",
            frozenset({"QuestionnaireResponse"}),
            _lazy(hub, on_questionnaire_response),
        )
    )
    registry.register(
        Reaction("monitoring-lace", frozenset({"Encounter"}), _lazy(hub, on_encounter))
    )


def install_knowledge(hub: Hub) -> None:
    """The shipped Morse Fall Scale Questionnaire, (re)written when it differs."""
    shipped = json.loads(MORSE_QUESTIONNAIRE.read_text())
    stored = hub.store.current("Questionnaire", shipped["id"])
    if stored is not None and not stored.deleted and stored.resource is not None:
        current = {k: v for k, v in stored.resource.items() if k != "meta"}
        if current == shipped:
            return
    hub.resources.update("Questionnaire", shipped["id"], shipped)


def register_timers(hub: Hub, registry: TimerRegistry) -> None:
    # The kinds' handlers reach the context lazily (it needs the finished timers).
    proxy = _ContextProxy(hub)
    for kind in kinds(proxy):  # type: ignore[arg-type]
        registry.register(kind)


def register_operations(hub: Hub, registry: OperationRegistry) -> None:
    from fhirhub.monitoring.operations.declarations import operations

    for operation in operations(lambda: context(hub)):
        registry.register(operation)


class _ContextProxy:
    def __init__(self, hub: Hub):
        self._hub = hub

    def __getattr__(self, name: str) -> Any:
        return getattr(context(self._hub), name)
