"""Shared parts of the fault tests: a private embedded database (so killing it harms no other
test), a create load that records every acknowledged write, and process killers.
(No tests here.)"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fhirhub.embedded.database import EmbeddedDatabase
from fhirhub.embedded.ports import free_port
from fhirhub.fhir.errors import ConfigurationError


@contextmanager
def private_database(tools_dir: Path) -> Iterator[EmbeddedDatabase]:
    """Started and, at the end, stopped and removed. Not under pytest's tmp_path: a pytest
    run starting elsewhere resets /tmp/pytest-of-<user> to mode 700, and the postgres user
    (the cluster's owner when tests run as root) could then no longer reach its data."""
    root = Path(tempfile.mkdtemp(prefix="fhirhub-fault-"))
    database = EmbeddedDatabase(
        root=root / "db",
        tools_dir=tools_dir,
        port=free_port(),
        backend="postgresql",
        pg_port=free_port(),
    )
    database.start()
    try:
        yield database
    finally:
        database.stop()
        shutil.rmtree(root, ignore_errors=True)


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().split()[0])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def kill_postgres(data_dir: Path, whole_group: bool = True) -> int:
    """SIGKILL the postmaster; with `whole_group` its backends, WAL writer and checkpointer at
    the same instant too (pg_ctl starts the postmaster as a process group leader), which is
    the harshest process crash: nothing gets to flush what it holds in shared memory."""
    pid = postmaster_pid(data_dir)
    if whole_group:
        os.killpg(pid, signal.SIGKILL)
    else:
        os.kill(pid, signal.SIGKILL)
    return pid


def restart_database(database: EmbeddedDatabase, timeout: float = 30) -> None:
    """Start again after a kill, as serve's supervisor would: a killed postmaster's zombie
    (until its adoptive parent reaps it) or backends still exiting make PostgreSQL refuse
    to start for a moment."""
    database.stop()
    deadline = time.monotonic() + timeout
    while True:
        try:
            database.start()
            return
        except ConfigurationError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


@dataclass
class CreateLoad:
    """Threads creating Patients; `acknowledged` holds the id of every create answered 201.
    `post(marker) -> (status, id or None)` does one create."""

    post: Callable[[str], tuple[int, str | None]]
    threads: int = 8
    acknowledged: list[str] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    _pool: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> CreateLoad:
        for n in range(self.threads):
            thread = threading.Thread(target=self._run, args=(n,), daemon=True)
            thread.start()
            self._pool.append(thread)
        return self

    def _run(self, n: int) -> None:
        while not self.stop.is_set():
            try:
                status, resource_id = self.post(f"{n}-{uuid.uuid4().hex[:12]}")
            except Exception as error:  # a client-side failure: nothing acknowledged
                with self._lock:
                    self.errors.append(f"{type(error).__name__}: {error}"[:200])
                time.sleep(0.05)
                continue
            with self._lock:
                self.statuses[status] = self.statuses.get(status, 0) + 1
                if status == 201 and resource_id:
                    self.acknowledged.append(resource_id)
            if status != 201:
                time.sleep(0.02)

    def count(self) -> int:
        with self._lock:
            return len(self.acknowledged)

    def wait_for_more(self, than: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count() > than:
                return True
            time.sleep(0.02)
        return False

    def finish(self) -> None:
        self.stop.set()
        for thread in self._pool:
            thread.join(30)
