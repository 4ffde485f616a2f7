"""The supervision loop of `fhirhub serve`.

Every CHECK_S it asks each part whether it still runs, in dependency order (PostgreSQL,
FerretDB, then the processes that use them). A part that died is logged and restarted
after a backoff: RESTART_BASE_S for the first failure, doubling up to RESTART_CAP_S while
restarts keep failing or the part keeps dying soon after a restart; a part that stayed up
for STABLE_S starts again from the base. While the database is being restarted the web
processes answer 503 with Retry-After (api/availability.py), and `/healthz` shows each
part's state from the board.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from fhirhub.supervision.board import RESTARTING, STOPPED, UP, Board
from fhirhub.supervision.parts import Part, ProcessOwner
from fhirhub.supervision.reaper import reap_adopted

SUPERVISOR_LOG = "fhirhub.serve"
log = logging.getLogger(SUPERVISOR_LOG)

CHECK_S = 0.2
RESTART_BASE_S = 0.5
RESTART_CAP_S = 10.0
STABLE_S = 60.0


@dataclass
class Backoff:
    base_s: float = RESTART_BASE_S
    cap_s: float = RESTART_CAP_S
    stable_s: float = STABLE_S
    failures: int = 0
    up_since: float = 0.0

    def started(self, now: float) -> None:
        self.up_since = now

    def delay(self, now: float) -> float:
        """The wait before the next restart of a part that just died or failed to start."""
        if self.up_since and now - self.up_since >= self.stable_s:
            self.failures = 0
        self.failures += 1
        return min(self.base_s * 2 ** (self.failures - 1), self.cap_s)


class Supervisor:
    def __init__(self, board: Board, clock: Callable[[], float] = time.monotonic):
        self.board = board
        self.clock = clock
        self.parts: list[Part] = []
        self._backoff: dict[str, Backoff] = {}
        self._due: dict[str, float] = {}  # part -> when to restart it

    def watch(self, part: Part) -> None:
        self.parts.append(part)
        backoff = self._backoff[part.name] = Backoff()
        backoff.started(self.clock())
        self.board.set(part.name, state=UP, pid=part.pid())

    def check(self) -> None:
        """One round: notice deaths, restart what is due. Restarts run here, one at a time,
        in order (a database restart can take seconds: crash recovery)."""
        for part in self.parts:
            if part.name in self._due:
                if self.clock() >= self._due[part.name]:
                    self._restart(part)
                continue
            ended = part.exited()
            if ended is not None:
                self._schedule(part, f"{part.name} (pid {part.pid()}) died: {ended}")
        own = {part.pid() for part in self.parts if isinstance(part, ProcessOwner)}
        reap_adopted(lambda pid: pid in own)
        self.board.heartbeat()

    def _schedule(self, part: Part, why: str) -> None:
        wait = self._backoff[part.name].delay(self.clock())
        self._due[part.name] = self.clock() + wait
        state = self.board.set(
            part.name, state=RESTARTING, last_exit=why, next_attempt=time.time() + wait
        )
        log.warning("%s; restarting in %.1f s (restart %d)", why, wait, state.restarts + 1)

    def _restart(self, part: Part) -> None:
        del self._due[part.name]
        started = self.clock()
        try:
            part.restart()
        except Exception as error:  # any failure to start is retried
            self._schedule(part, f"{part.name} did not start: {error}")
            return
        self._backoff[part.name].started(self.clock())
        restarts = self.board.parts[part.name].restarts + 1
        self.board.set(part.name, state=UP, pid=part.pid(), restarts=restarts, next_attempt=None)
        log.warning(
            "%s restarted (pid %s) in %.1f s", part.name, part.pid(), self.clock() - started
        )

    def stop_all(self) -> None:
        """Stop in reverse order: the web server and worker before the database."""
        for part in reversed(self.parts):
            self.board.set(part.name, state=STOPPED)
            try:
                part.stop()
            except Exception:
                log.exception("stopping %s", part.name)
        self.board.remove()
