"""Set-up problems end in one actionable line on stderr and exit 1, never a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fhirhub.config import PROJECT_ROOT

FHIRHUB = [sys.executable, "-m", "fhirhub.cli"]


def run_cli(
    args: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **env}
    return subprocess.run(
        [*FHIRHUB, *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=PROJECT_ROOT,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("fhirhub: error: ")
    assert fragment in lines[0]


@pytest.fixture
def occupied_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_web_port_in_use(occupied_port: int) -> None:
    proc = run_cli(["serve"], {"FHIRHUB_PORT": str(occupied_port)})
    assert_one_line_error(proc, f"port {occupied_port} is already in use")


def test_unreachable_mongodb_uri(tmp_path: Path, occupied_port: int) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        web_port = probe.getsockname()[1]
    env = {
        "MONGODB_URI": "mongodb://127.0.0.1:1/",
        "FHIRHUB_DB_TIMEOUT_MS": "300",
        "FHIRHUB_PORT": str(web_port),
    }
    proc = run_cli(["serve"], env)
    assert_one_line_error(proc, "cannot reach MongoDB at mongodb://127.0.0.1:1/")


def test_embedded_db_port_in_use(tmp_path: Path, occupied_port: int) -> None:
    env = {"FHIRHUB_VAR_DIR": str(tmp_path), "FHIRHUB_DB_PORT": str(occupied_port)}
    proc = run_cli(["db", "start"], env)
    assert_one_line_error(proc, f"port {occupied_port} for the embedded database is in use")


def test_missing_go_toolchain(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "FHIRHUB_TOOLS_DIR": str(tmp_path / "tools")}
    proc = run_cli(["setup"], env)
    assert_one_line_error(proc, "Go toolchain not found")


def test_failed_ferretdb_build(tmp_path: Path) -> None:
    # An empty module cache with the proxy switched off makes the download step fail.
    env = {
        "FHIRHUB_TOOLS_DIR": str(tmp_path / "tools"),
        "GOPROXY": "off",
        "GOMODCACHE": str(tmp_path / "gomod"),
        "GOPATH": str(tmp_path / "gopath"),
    }
    proc = run_cli(["setup"], env)
    assert_one_line_error(proc, "FerretDB build failed while trying to download")


def test_bad_setting_value() -> None:
    proc = run_cli(["serve"], {"FHIRHUB_PORT": "eighty"})
    assert_one_line_error(proc, "FHIRHUB_PORT must be an integer")
