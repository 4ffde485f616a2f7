"""Running due timer jobs in `fhirhub worker`: scan, claim under a lease, run, record.

Any number of workers may run: a job runs only under its lease (a unique-insert chain, see
storage/delivery_leases.py), and before running it is read again under that lease and its
key's live plan checked, so a job re-planned or cancelled meanwhile is recorded as
superseded instead. A job whose time passed while no worker ran is found by the catch-up
scan at start: it runs if its deadline has not passed, otherwise it is recorded as skipped
and its kind's `on_end` says why. The attempt is counted before the handler runs, so a
handler that kills its process cannot loop forever. Handlers must finish well within the
lease (outbound channels bound their timeouts to a quarter of it); a send that outlives it
could be repeated by another worker, which only channels that carry an idempotency key
tolerate (see fhirhub/channels/).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from pymongo.errors import PyMongoError

from fhirhub.storage.delivery_leases import Lease
from fhirhub.storage.store import utc_now_ms
from fhirhub.storage.timers import (
    DONE,
    FAILED,
    FINAL,
    PENDING,
    SKIPPED,
    SUPERSEDED,
    Job,
    TimerStore,
    minute_of,
    retry_delay,
)
from fhirhub.timers.model import Defer, GiveUp, Retry, Skip, TimerKind
from fhirhub.timers.registry import TimerRegistry

log = logging.getLogger(__name__)

CATCH_UP = timedelta(seconds=30)  # full scan of pending jobs this often (and at start)
MAX_MINUTES = 30  # a longer gap since the last scan: scan everything instead
PRUNE_EVERY = timedelta(hours=1)
RETENTION = timedelta(days=7)  # finished jobs kept this long (idempotency of reactions)
UNKNOWN_KIND_WAIT = timedelta(minutes=1)


class TimerRunner:
    def __init__(
        self,
        store: TimerStore,
        registry: TimerRegistry,
        owner: str,
        lease: timedelta,
        threads: int = 4,
        poll_s: float = 0.25,
        clock: Callable[[], datetime] = utc_now_ms,
    ):
        self.store = store
        self.registry = registry
        self.owner = owner
        self.lease_duration = lease
        self.threads = threads
        self.poll_s = poll_s
        self.clock = clock
        self.stop_event = threading.Event()
        self._wake = threading.Condition()
        self._inflight: set[str] = set()
        self._lock = threading.Lock()
        self._held_back: dict[str, datetime] = {}
        self._scanned_to: int | None = None
        self._full_scan_at: datetime | None = None
        self._pruned_at = clock() - PRUNE_EVERY
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="timer")
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="timer-scan", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        with self._wake:
            self._wake.notify_all()

    def shutdown(self, timeout: float = 10.0) -> bool:
        self.stop_event.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)
        return not self._inflight

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.scan()
            except PyMongoError as error:
                log.warning("timers: database error, retrying: %s", error)
                self.stop_event.wait(1.0)
            except Exception:
                log.exception("timers: scan failed")
                self.stop_event.wait(1.0)
            with self._wake:
                self._wake.wait(self.poll_s)

    # -- scanning ----------------------------------------------------------------------------

    def scan(self) -> int:
        """Hand every due job to a thread; returns how many were handed over."""
        now = self.clock()
        submitted = 0
        for job_id in self.due(now):
            with self._lock:
                if job_id in self._inflight or len(self._inflight) >= self.threads * 4:
                    continue
                self._inflight.add(job_id)
            self._pool.submit(self._run_guarded, job_id)
            submitted += 1
        if now - self._pruned_at >= PRUNE_EVERY:
            self._pruned_at = now
            self.store.prune(now - RETENTION)
        return submitted

    def due(self, now: datetime) -> list[str]:
        minute = minute_of(now)
        first = minute - 1 if self._scanned_to is None else min(self._scanned_to, minute - 1)
        full = (
            self._full_scan_at is None
            or now - self._full_scan_at >= CATCH_UP
            or minute - first > MAX_MINUTES
        )
        if full:
            docs = self.store.all_pending()
            self._full_scan_at = now
        else:
            docs = [d for m in range(first, minute + 1) for d in self.store.due_in_minute(m)]
        self._scanned_to = minute
        ready: list[tuple[datetime, str]] = []
        for doc in docs:
            when = doc.get("next") or doc["due"]
            when = when if when.tzinfo else when.replace(tzinfo=now.tzinfo)
            if when > now or self._held_back.get(doc["_id"], now) > now:
                continue
            ready.append((when, doc["_id"]))
        ready.sort()
        return [job_id for _, job_id in ready]

    # -- running one job ---------------------------------------------------------------------

    def run_now(self) -> int:
        """Run every due job in this thread (tests, benchmarks); returns how many ran."""
        ran = 0
        for job_id in self.due(self.clock()):
            ran += self.run(job_id)
        return ran

    def _run_guarded(self, job_id: str) -> None:
        try:
            self.run(job_id)
        except PyMongoError as error:
            log.warning("timers: database error on %s: %s", job_id, error)
        except Exception:
            log.exception("timers: running %s", job_id)
        finally:
            with self._lock:
                self._inflight.discard(job_id)

    def run(self, job_id: str) -> bool:
        """Claim and run one job; False when it was not ours to run (now)."""
        leases = self.store.leases
        lease = leases.acquire(f"timer:{job_id}", self.owner, self.lease_duration)
        if lease is None:
            return False
        finished = False
        try:
            job = self.store.load(job_id)
            if job is None or job.state != PENDING:
                finished = job is None or job.state in FINAL
                return False
            now = self.clock()
            if job.when > now:
                return False
            kind = self.registry.get(job.kind)
            if kind is None:
                log.warning("timers: no handler for kind %r (job %s)", job.kind, job_id)
                self._held_back[job_id] = now + UNKNOWN_KIND_WAIT
                return False
            finished = True
            self._execute(job, kind, lease, now)
            return True
        finally:
            if finished:
                leases.drop(lease)
            else:
                leases.release(lease)

    def _execute(self, job: Job, kind: TimerKind, lease: Lease, now: datetime) -> None:
        if self.store.live_plan(job.key) != job.plan:
            self.store.finish(job.id, SUPERSEDED, self.owner, note="re-planned or cancelled")
            return
        if job.deadline is not None and now > job.deadline:
            reason = f"too late: due {job.due.isoformat()}, deadline {job.deadline.isoformat()}"
            self._end(job, kind, SKIPPED, reason)
            return
        attempts = job.attempts + 1
        if attempts > kind.max_attempts:
            self._end(job, kind, FAILED, f"gave up after {job.attempts} attempts")
            return
        self.store.counted(attempts, job.id)
        if not self.store.leases.valid(lease, self.lease_duration):
            return  # stalled past the lease: another worker may take it; count stands
        try:
            note = kind.handler(job)
        except Defer as defer:
            self.store.retry(job.id, attempts - 1, defer.until, str(defer)[:500], self.owner)
        except Skip as skip:
            self._end(job, kind, SKIPPED, str(skip))
        except GiveUp as give_up:
            self._end(job, kind, FAILED, str(give_up))
        except PyMongoError:
            raise  # the database: the attempt stays counted; the lease expires, it re-runs
        except Exception as error:
            reason = str(error) if isinstance(error, Retry) else f"{type(error).__name__}: {error}"
            if not isinstance(error, Retry):
                log.exception("timers: %s failed (attempt %d)", job.id, attempts)
            if attempts >= kind.max_attempts:
                self._end(job, kind, FAILED, f"{reason} (after {attempts} attempts)")
                return
            delay = retry_delay(attempts, kind.retry_base, kind.retry_cap)
            self.store.retry(job.id, attempts, self.clock() + delay, reason[:500], self.owner)
        else:
            self.store.finish(job.id, DONE, self.owner, note=(note or "")[:500])

    def _end(self, job: Job, kind: TimerKind, state: str, reason: str) -> None:
        try:
            kind.on_end(job, state, reason)
        except PyMongoError:
            raise
        except Exception:
            log.exception("timers: on_end of %s", job.id)
        self.store.finish(job.id, state, self.owner, err=reason[:500])


__all__ = ["DONE", "TimerRunner"]
