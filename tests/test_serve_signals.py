"""`fhirhub serve` stopped by SIGTERM (what process managers send) at any point, including
during start-up, stops everything it started: nothing is left listening or running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fhirhub.config import PROJECT_ROOT
from fhirhub.embedded.ports import free_port, port_in_use, wait_for_port


def _running(pid_file: Path) -> bool:
    if not pid_file.exists():
        return False
    try:
        os.kill(int(pid_file.read_text().split()[0]), 0)
    except (ProcessLookupError, ValueError):
        return False
    return True


def test_sigterm_during_start_up_leaves_nothing_running(tmp_path: Path) -> None:
    web, db, pg = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "FHIRHUB_VAR_DIR": str(tmp_path),
        "FHIRHUB_PORT": str(web),
        "FHIRHUB_DB_PORT": str(db),
        "FHIRHUB_PG_PORT": str(pg),
        "FHIRHUB_WORKER": "off",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "fhirhub.cli", "serve"],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # The database is up while the web server is not yet: start-up is still running
        # (preparing the database and loading the seed data take seconds).
        assert wait_for_port(db, 120)
        assert not port_in_use(web)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (port_in_use(db) or port_in_use(pg)):
        time.sleep(0.2)
    assert not port_in_use(db), "FerretDB left running"
    assert not port_in_use(pg), "PostgreSQL left running"
    assert not port_in_use(web), "gunicorn left running"
    assert not _running(tmp_path / "db" / "pg" / "postmaster.pid")
