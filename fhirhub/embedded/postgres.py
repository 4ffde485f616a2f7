"""A private PostgreSQL cluster for FerretDB's postgresql handler (Debian's postgresql package).

PostgreSQL refuses to run as root, so when we are root the cluster belongs to the
`postgres` system user and its commands run through runuser.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

from fhirhub.embedded.ports import port_in_use
from fhirhub.fhir.errors import ConfigurationError

PG_USER = "fhirhub"
PG_DATABASE = "ferretdb"
AUTOVACUUM_NAPTIME = "5s"
# A 201 means durable: a commit returns only once its WAL is flushed to disk. With
# synchronous_commit=off a kill -9 of the postmaster lost 6-9 of 522 acknowledged creates
# (tests/test_durability.py). Given on the command line, which outranks postgresql.conf and
# ALTER SYSTEM, so no file edit can quietly weaken them.
DURABILITY = "-c synchronous_commit=on -c fsync=on -c full_page_writes=on"


def bin_dir() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if candidates:
        return Path(candidates[-1]).parent
    raise ConfigurationError(
        "PostgreSQL server binaries not found: `apt-get install postgresql` (make does this), "
        "or set FHIRHUB_DB_BACKEND=sqlite, or set MONGODB_URI"
    )


def psql(port: int, sql: str) -> str:
    """Run SQL on the embedded cluster as its owner (set-up only; no request input)."""
    connection = ["-h", "127.0.0.1", "-p", str(port), "-U", PG_USER, "-d", PG_DATABASE]
    proc = subprocess.run(
        [str(bin_dir() / "psql"), *connection, "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip())
    return proc.stdout


def _as_owner(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def _chown_for_postgres(path: Path) -> None:
    if os.geteuid() != 0:
        return
    import pwd

    entry = pwd.getpwnam("postgres")
    for p in [path, *path.rglob("*")]:
        os.chown(p, entry.pw_uid, entry.pw_gid)
    # The cluster user must be able to traverse every parent directory.
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o011)


def _zombie(pid: int) -> bool:
    """Dead but not yet reaped (see supervision/reaper.py)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def _check(cmd: list[str], what: str) -> None:
    proc = subprocess.run(_as_owner(cmd), capture_output=True, text=True)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines() or ["no output"]
        raise ConfigurationError(f"PostgreSQL {what} failed: {lines[-1]}")


class PostgresCluster:
    def __init__(self, data_dir: Path, port: int):
        self.data_dir = data_dir
        self.port = port

    @property
    def url(self) -> str:
        return f"postgres://{PG_USER}@127.0.0.1:{self.port}/{PG_DATABASE}"

    def running(self) -> bool:
        return self.postmaster_pid() is not None and port_in_use(self.port)

    def start(self) -> None:
        pg_bin = bin_dir()
        if not (self.data_dir / "PG_VERSION").exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            _chown_for_postgres(self.data_dir)
            _check(
                [
                    str(pg_bin / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "--auth=trust",
                    "-U",
                    PG_USER,
                    "-E",
                    "UTF8",
                    # No --no-sync: the new cluster's files reach the disk before the first
                    # acknowledged write relies on them (0.12 s more than without).
                ],
                "initdb",
            )
        if self.running():
            return
        if port_in_use(self.port):
            raise ConfigurationError(
                f"port {self.port} (PostgreSQL for the embedded DB) is in use by another program: "
                "stop it or set FHIRHUB_PG_PORT"
            )
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data_dir} "
            f"{DURABILITY} "
            # Outbox and delivery tables churn fast; see storage/delivery_vacuum.py.
            f"-c autovacuum_naptime={AUTOVACUUM_NAPTIME}"
        )
        _check(
            [
                str(pg_bin / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-o",
                options,
                "-l",
                str(self.data_dir / "server.log"),
                "-w",
                "-t",
                "60",
                "start",
            ],
            "start",
        )
        proc = subprocess.run(
            [
                str(pg_bin / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                PG_USER,
                PG_DATABASE,
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0 and "already exists" not in proc.stderr:
            raise ConfigurationError(f"PostgreSQL createdb failed: {proc.stderr.strip()}")

    def postmaster_pid(self) -> int | None:
        """The live postmaster's pid; None when none runs (also after a kill -9, which
        leaves its postmaster.pid behind: pg_ctl start then replaces it)."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # alive, owned by the postgres user
        return None if _zombie(pid) else pid

    def stop(self) -> None:
        if self.postmaster_pid() is None:
            return
        _check(
            [str(bin_dir() / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"],
            "stop",
        )
