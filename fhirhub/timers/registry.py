"""The kinds of timer the worker runs, and planning jobs by key."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from fhirhub.storage.timers import TimerStore
from fhirhub.timers.model import TimerKind


class TimerRegistry:
    def __init__(self) -> None:
        self._kinds: dict[str, TimerKind] = {}

    def register(self, kind: TimerKind) -> None:
        if kind.name in self._kinds:
            raise ValueError(f"timer kind {kind.name!r} is registered twice")
        self._kinds[kind.name] = kind

    def get(self, name: str) -> TimerKind | None:
        return self._kinds.get(name)

    def names(self) -> list[str]:
        return sorted(self._kinds)


class Timers:
    """What planners use (web requests, reactions): plan, re-plan, cancel by key.

    Keys name what the job is about ("reminder:Appointment/123:P1D"), so planning the same
    key again replaces the earlier plan and cancelling withdraws it, whoever planned it."""

    def __init__(
        self,
        store: TimerStore,
        registry: TimerRegistry,
        on_planned: Callable[[], None] = lambda: None,
    ):
        self.store = store
        self.registry = registry
        self.on_planned = on_planned  # wakes this process's runner (jobs due soon)

    def plan(
        self,
        key: str,
        kind: str,
        due: datetime,
        payload: dict[str, Any] | None = None,
        deadline: datetime | None = None,
    ) -> str:
        if self.registry.get(kind) is None:
            raise ValueError(f"unknown timer kind {kind!r}")
        plan = self.store.plan(key, kind, due, payload or {}, deadline)
        self.on_planned()
        return plan

    def plan_if_changed(
        self,
        key: str,
        kind: str,
        due: datetime,
        payload: dict[str, Any],
        deadline: datetime | None = None,
    ) -> bool:
        """Plan unless the live plan of `key` is already this one (same time and payload):
        reactions see every version of a resource, most of which change nothing here."""
        live = self.store.live_job(key)
        if live is not None and live.due == due and live.payload == payload:
            return False
        self.plan(key, kind, due, payload, deadline)
        return True

    def cancel(self, key: str) -> None:
        if self.store.live_plan(key) is not None:
            self.store.cancel(key)

    def plan_once(self, jobs: list[tuple[str, str, datetime, dict[str, Any]]]) -> None:
        self.store.plan_once(jobs)
        if jobs:
            self.on_planned()
