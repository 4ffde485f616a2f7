"""What the supervisor watches: the embedded PostgreSQL and FerretDB, and child processes
(gunicorn, the notification worker). Each can tell whether it still runs, why it ended,
and start again."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Protocol

from fhirhub.embedded.database import EmbeddedDatabase


class Part(Protocol):
    name: str

    def pid(self) -> int | None: ...

    def exited(self) -> str | None:
        """None while it runs; else how it ended ("killed by signal 9", "exit status 1")."""
        ...

    def restart(self) -> None: ...

    def stop(self) -> None: ...


class ProcessOwner:
    """A part whose process is a child of serve (a Popen reaps it, not the reaper)."""


def describe_status(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"killed by {name}"
    return f"exit status {code}"


class PostgresPart:
    """The postmaster is not our child (pg_ctl daemonises it): alive means its pid file names
    a live process. Restarting it runs crash recovery, then restarts FerretDB."""

    name = "postgresql"

    def __init__(self, database: EmbeddedDatabase):
        assert database.postgres is not None
        self.database = database
        self.cluster = database.postgres
        self._pid = self.cluster.postmaster_pid()

    def pid(self) -> int | None:
        return self._pid

    def exited(self) -> str | None:
        if self.cluster.postmaster_pid() is not None:
            return None
        return f"postmaster (pid {self._pid}) is gone"

    def restart(self) -> None:
        self.database.restart_postgres()
        self._pid = self.cluster.postmaster_pid()

    def stop(self) -> None:
        pass  # serve stops the database last, after the processes that use it


class FerretdbPart(ProcessOwner):
    name = "ferretdb"

    def __init__(self, database: EmbeddedDatabase):
        self.database = database

    def pid(self) -> int | None:
        proc = self.database.ferretdb_process
        return proc.pid if proc is not None else None

    def exited(self) -> str | None:
        code = self.database.ferretdb_exit()
        return None if code is None else describe_status(code)

    def restart(self) -> None:
        self.database.restart_ferretdb()

    def stop(self) -> None:
        pass  # as PostgresPart.stop


class ProcessPart(ProcessOwner):
    """A child process in a session of its own: a terminal's Ctrl-C reaches only serve, which
    stops each child once (a gthread gunicorn worker that gets a second signal while
    shutting down deadlocks), and killpg at the end leaves none of its processes behind."""

    def __init__(self, name: str, argv: list[str], stop_timeout: float = 15.0):
        self.name = name
        self.argv = argv
        self.stop_timeout = stop_timeout
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ProcessPart:
        self.process = subprocess.Popen(self.argv, start_new_session=True)
        return self

    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def exited(self) -> str | None:
        if self.process is None:
            return "not started"
        code = self.process.poll()
        return None if code is None else describe_status(code)

    def restart(self) -> None:
        self._kill_group()  # what the dead process left (e.g. gunicorn's workers)
        self.start()

    def stop(self) -> None:
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self._kill_group()

    def _kill_group(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
