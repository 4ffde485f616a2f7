"""Timer kinds and the outcomes a handler can signal (pure)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from fhirhub.storage.timers import Job


class Retry(Exception):
    """Transient failure: run the job again later (with backoff), up to its attempts."""


class GiveUp(Exception):
    """Permanent failure: record the job as failed now (retrying cannot help)."""


class Defer(Exception):
    """Not now (quiet hours): run again at `until`, without counting a failed attempt."""

    def __init__(self, until: datetime, reason: str = ""):
        super().__init__(reason or f"deferred until {until.isoformat()}")
        self.until = until


class Skip(Exception):
    """Nothing to do any more (e.g. the appointment was cancelled): record as skipped."""


# A handler returns a short note for the record (or None).
Handler = Callable[[Job], "str | None"]
# Called once when a job ends without running to success: (job, state, reason).
Ending = Callable[[Job, str, str], None]


def _nothing(job: Job, state: str, reason: str) -> None:
    return None


@dataclass(frozen=True)
class TimerKind:
    name: str
    handler: Handler
    # A job whose deadline passed before it could run is skipped; this records why.
    on_end: Ending = _nothing
    max_attempts: int = 10
    retry_base: timedelta = timedelta(seconds=5)
    retry_cap: timedelta = timedelta(minutes=5)
