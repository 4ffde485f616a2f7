"""Durable timers on the real database: due jobs run once under a lease, re-planning
replaces, cancelling withdraws, jobs missed while no worker ran run on restart or are
skipped when too late, failures retry with backoff, and several runners never run a job
twice. A clock the tests move stands in for waiting."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fhirhub.hub import Hub
from fhirhub.storage.timers import DONE, FAILED, PENDING, SKIPPED, SUPERSEDED, Job, TimerStore
from fhirhub.timers.model import GiveUp, Retry, Skip, TimerKind
from fhirhub.timers.registry import TimerRegistry, Timers
from fhirhub.timers.runner import TimerRunner
from fhirhub.worker.runner import NotificationWorker
from tests.test_notifications_support import wait_for

T0 = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class World:
    def __init__(self, hub: Hub) -> None:
        self.clock = Clock()
        self.store = TimerStore(hub.db, self.clock)
        self.store.ensure_indexes()
        self.kinds = TimerRegistry()
        self.timers = Timers(self.store, self.kinds)
        self.ran: Counter[str] = Counter()
        self.ended: list[tuple[str, str, str]] = []
        self.failures: dict[str, list[BaseException]] = {}
        self.lock = threading.Lock()
        self.kinds.register(
            TimerKind(
                "test",
                self.handle,
                on_end=self.end,
                max_attempts=3,
                retry_base=timedelta(seconds=10),
                retry_cap=timedelta(seconds=40),
            )
        )

    def handle(self, job: Job) -> str:
        with self.lock:
            self.ran[job.key] += 1
            planned = self.failures.get(job.key)
            if planned:
                raise planned.pop(0)
        return f"ran {job.payload.get('n')}"

    def end(self, job: Job, state: str, reason: str) -> None:
        self.ended.append((job.key, state, reason))

    def runner(self, owner: str = "w1") -> TimerRunner:
        return TimerRunner(self.store, self.kinds, owner, timedelta(seconds=30), clock=self.clock)

    def job(self, key: str) -> Any:
        docs = list(self.store.jobs.find({"key": key}))
        return sorted(docs, key=lambda d: d["planned"])


@pytest.fixture
def world(hub: Hub) -> World:
    return World(hub)


def test_a_job_runs_once_when_due(world: World) -> None:
    world.timers.plan("a", "test", T0 + timedelta(minutes=5), {"n": 1})
    runner = world.runner()
    assert runner.run_now() == 0
    world.clock.advance(minutes=5)
    assert runner.run_now() == 1
    assert runner.run_now() == 0
    [doc] = world.job("a")
    assert (doc["st"], doc["n"], doc["note"]) == (DONE, 1, "ran 1")
    assert world.ran == Counter({"a": 1})


def test_replanning_replaces_and_cancelling_withdraws(world: World) -> None:
    world.timers.plan("a", "test", T0 + timedelta(minutes=1), {"n": 1})
    world.timers.plan("a", "test", T0 + timedelta(minutes=2), {"n": 2})
    world.timers.plan("b", "test", T0 + timedelta(minutes=1))
    world.timers.cancel("b")
    world.clock.advance(minutes=3)
    runner = world.runner()
    runner.run_now()
    first, second = world.job("a")
    assert (first["st"], second["st"], second["note"]) == (SUPERSEDED, DONE, "ran 2")
    assert world.job("b")[0]["st"] == SUPERSEDED
    assert world.ran == Counter({"a": 1})
    # Planned again after a cancel: it runs.
    world.timers.plan("b", "test", world.clock.now)
    runner.run_now()
    assert world.ran["b"] == 1


def test_jobs_missed_while_down_run_or_are_skipped_when_too_late(world: World) -> None:
    due = T0 + timedelta(minutes=1)
    world.timers.plan("late-ok", "test", due)
    world.timers.plan("too-late", "test", due, deadline=due + timedelta(minutes=5))
    world.clock.advance(hours=3)  # no worker ran meanwhile; a fresh one starts
    world.runner("restarted").run_now()
    assert world.job("late-ok")[0]["st"] == DONE
    skipped = world.job("too-late")[0]
    assert skipped["st"] == SKIPPED and "too late" in skipped["err"]
    assert world.ended == [("too-late", SKIPPED, skipped["err"])]
    assert world.ran == Counter({"late-ok": 1})


def test_failures_retry_with_backoff_then_give_up(world: World) -> None:
    world.failures["flaky"] = [Retry("smtp down"), RuntimeError("boom")]
    world.failures["broken"] = [Retry("1"), Retry("2"), Retry("3")]
    world.failures["skip"] = [Skip("appointment cancelled")]
    world.failures["fatal"] = [GiveUp("no address")]
    for key in ("flaky", "broken", "skip", "fatal"):
        world.timers.plan(key, "test", T0)
    runner = world.runner()
    runner.run_now()
    flaky = world.job("flaky")[0]
    assert (flaky["st"], flaky["n"], flaky["err"]) == (PENDING, 1, "smtp down")
    world.clock.advance(seconds=9)
    assert runner.run_now() == 0  # the first retry waits 10 s
    world.clock.advance(seconds=1)
    runner.run_now()
    assert world.job("flaky")[0]["n"] == 2  # then 20 s
    world.clock.advance(seconds=20)
    runner.run_now()
    world.clock.advance(seconds=40)
    runner.run_now()
    assert world.job("flaky")[0]["st"] == DONE and world.ran["flaky"] == 3
    broken = world.job("broken")[0]
    assert broken["st"] == FAILED and "after 3 attempts" in broken["err"]
    assert world.job("skip")[0]["st"] == SKIPPED
    assert world.job("fatal")[0]["st"] == FAILED
    assert sorted((k, s) for k, s, _ in world.ended) == [
        ("broken", FAILED),
        ("fatal", FAILED),
        ("skip", SKIPPED),
    ]


def test_a_leased_job_waits_for_its_holder_to_expire(world: World) -> None:
    world.timers.plan("held", "test", T0)
    [doc] = world.job("held")
    # A worker that claimed it and died: its lease runs out before anyone else may run it.
    world.store.leases.acquire(f"timer:{doc['_id']}", "dead-worker", timedelta(seconds=30))
    runner = world.runner()
    assert runner.run_now() == 0
    world.clock.advance(seconds=31)
    assert runner.run_now() == 1
    assert world.ran["held"] == 1


def test_parallel_runners_run_each_job_once(world: World) -> None:
    for i in range(120):
        world.timers.plan(f"job-{i}", "test", T0, {"n": i})
    world.clock.advance(seconds=1)
    runners = [world.runner(f"w{i}") for i in range(4)]
    threads = [threading.Thread(target=r.run_now) for r in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for runner in runners:
        runner.run_now()
    assert set(world.ran.values()) == {1} and len(world.ran) == 120
    assert world.store.counts()[DONE] == 120
    assert world.store.leases.coll.count_documents({}) == 0  # finished jobs' leases dropped


def test_plan_once_is_idempotent_by_key(world: World) -> None:
    job = ("reaction:x:Patient/1/1", "test", T0, {"n": 7})
    world.timers.plan_once([job, ("reaction:x:Patient/2/1", "test", T0, {})])
    world.timers.plan_once([job])
    runner = world.runner()
    runner.run_now()
    world.timers.plan_once([job])  # after it ran: still not again
    world.clock.advance(minutes=2)
    runner.run_now()
    assert world.ran == Counter({"reaction:x:Patient/1/1": 1, "reaction:x:Patient/2/1": 1})


def test_the_notification_worker_runs_timers(hub: Hub) -> None:
    ran = threading.Event()
    hub.timer_kinds.register(TimerKind("probe", lambda job: ran.set() or None))
    worker = NotificationWorker(hub)
    worker.start()
    try:
        hub.timers.plan("probe:1", "probe", datetime.now(UTC))
        wait_for(ran.is_set, 10, "the worker to run a due timer")
    finally:
        assert worker.shutdown()
