"""The embedded MongoDB-wire database: FerretDB over PostgreSQL (default) or SQLite.

Processes run detached with pid files under var/ so `fhirhub db stop` from another shell
can stop them; `fhirhub serve` stops only what it started itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from fhirhub.config import Settings
from fhirhub.embedded.ferretdb import ensure_ferretdb, file_lock
from fhirhub.embedded.ports import port_in_use, wait_for_port
from fhirhub.embedded.postgres import PostgresCluster
from fhirhub.fhir.errors import ConfigurationError


@dataclass
class DatabaseStatus:
    backend: str
    ferretdb_pid: int | None
    ferretdb_listening: bool
    postgres_running: bool | None
    uri: str

    @property
    def up(self) -> bool:
        return self.ferretdb_pid is not None and self.ferretdb_listening


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EmbeddedDatabase:
    def __init__(self, root: Path, tools_dir: Path, port: int, backend: str, pg_port: int):
        self.root = root
        self.tools_dir = tools_dir
        self.port = port
        self.backend = backend
        self.postgres = PostgresCluster(root / "pg", pg_port) if backend == "postgresql" else None
        self.ferretdb_process: subprocess.Popen[bytes] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> EmbeddedDatabase:
        return cls(
            settings.var_dir / "db",
            settings.tools_dir,
            settings.db_port,
            settings.db_backend,
            settings.pg_port,
        )

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    @property
    def _pidfile(self) -> Path:
        return self.root / "ferretdb.pid"

    def _ferretdb_pid(self) -> int | None:
        try:
            pid = int(self._pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def status(self) -> DatabaseStatus:
        return DatabaseStatus(
            backend=self.backend,
            ferretdb_pid=self._ferretdb_pid(),
            ferretdb_listening=port_in_use(self.port),
            postgres_running=self.postgres.running() if self.postgres else None,
            uri=self.uri,
        )

    def start(self) -> bool:
        """Start if not running. Returns True when this call started FerretDB."""
        self.root.mkdir(parents=True, exist_ok=True)
        with file_lock(self.root / ".start.lock"):
            if self._ferretdb_pid() is not None and port_in_use(self.port):
                return False
            if port_in_use(self.port):
                raise ConfigurationError(
                    f"port {self.port} for the embedded database is in use by another program: "
                    "stop it or set FHIRHUB_DB_PORT (or MONGODB_URI to use that server)"
                )
            if self.postgres is not None:
                self.postgres.start()
            self._start_ferretdb()
            return True

    def _start_ferretdb(self) -> None:
        binary = ensure_ferretdb(self.tools_dir)
        args = [
            str(binary),
            f"--listen-addr=127.0.0.1:{self.port}",
            f"--state-dir={self.root}",
            "--telemetry=disable",
            "--debug-addr=-",
            "--log-level=warn",
        ]
        if self.postgres is not None:
            args += ["--handler=postgresql", f"--postgresql-url={self.postgres.url}"]
        else:
            (self.root / "sqlite").mkdir(exist_ok=True)
            args += ["--handler=sqlite", f"--sqlite-url=file:{self.root / 'sqlite'}/"]
        with open(self.root / "ferretdb.log", "ab") as log:
            proc = subprocess.Popen(
                args, stdout=log, stderr=log, start_new_session=True, env=ferretdb_env()
            )
        self.ferretdb_process = proc
        self._pidfile.write_text(str(proc.pid))
        if not wait_for_port(self.port, 30):
            proc.kill()
            proc.wait()
            raise ConfigurationError(
                f"FerretDB did not start listening on port {self.port}; "
                f"see {self.root}/ferretdb.log"
            )

    # -- supervision (fhirhub/supervision): restart a part that died, leave the rest -------

    def ferretdb_exit(self) -> int | None:
        """FerretDB's exit status once the process this object started has ended (reaped, so
        no zombie looks alive), else None. Only for a FerretDB started here."""
        proc = self.ferretdb_process
        return None if proc is None else proc.poll()

    def restart_ferretdb(self) -> None:
        with file_lock(self.root / ".start.lock"):
            self._stop_ferretdb()
            self._start_ferretdb()

    def restart_postgres(self) -> None:
        """Start PostgreSQL again (crash recovery replays its WAL), then FerretDB, whose
        connection pool still holds connections to the old postmaster's backends."""
        if self.postgres is None:
            return
        with file_lock(self.root / ".start.lock"):
            self.postgres.start()
            # Its requests are failing anyway; a graceful stop waited 3 s for its clients.
            self._stop_ferretdb(grace_s=0.5)
            self._start_ferretdb()

    def _stop_ferretdb(self, grace_s: float = 10.0) -> None:
        pid = self._ferretdb_pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            while _pid_alive(pid) and time.monotonic() < deadline:
                with contextlib.suppress(ChildProcessError):  # reap it if it is our child
                    os.waitpid(pid, os.WNOHANG)
                time.sleep(0.05)
            if _pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        if self.ferretdb_process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.ferretdb_process.wait(5)
        self.ferretdb_process = None
        self._pidfile.unlink(missing_ok=True)

    def stop(self) -> None:
        self._stop_ferretdb()
        if self.postgres is not None:
            self.postgres.stop()


# Go's collector at its default (GOGC=100) runs after every few requests: FerretDB allocates
# a lot per command while its live heap stays small, and GC work was the largest part of
# its profile (perf). Measured through the server at GOGC 100 -> 1600: read at
# concurrency 16 819 -> 1,050/s, create 661 -> 735/s, FerretDB CPU per create 0.72 ->
# 0.55 ms, resident memory about 165 MB. GOMEMLIMIT bounds the heap should it grow. Values
# already in the environment win.
GO_RUNTIME_DEFAULTS = {"GOGC": "1000", "GOMEMLIMIT": "1GiB"}


def ferretdb_env() -> dict[str, str]:
    env = dict(os.environ)
    for name, value in GO_RUNTIME_DEFAULTS.items():
        env.setdefault(name, value)
    return env
