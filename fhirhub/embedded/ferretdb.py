"""Build FerretDB v1.24.2 from the Go module proxy into the gitignored tools dir.

`go install ...@v1.24.2` asks the proxy for the module's version list, which this network
refuses, so we `go mod download` the exact version, copy it out of the read-only module
cache and build it there. FerretDB reads its version from build/version/version.txt and
panics at start if it is empty, so we write it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fhirhub.fhir.errors import ConfigurationError

FERRETDB_MODULE = "github.com/FerretDB/FerretDB"
FERRETDB_VERSION = "v1.24.2"


def ferretdb_binary(tools_dir: Path) -> Path:
    return tools_dir / f"ferretdb-{FERRETDB_VERSION}"


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Serialise set-up between concurrent processes (pytest workers, make run + make test)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        raise ConfigurationError(
            "Go toolchain not found: install Go >= 1.22 (https://go.dev/dl) and put `go` on PATH, "
            "or set MONGODB_URI to use an existing MongoDB"
        )
    return go


def _run(cmd: list[str], cwd: Path, env: dict[str, str], what: str) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines() or ["no output"]
        raise ConfigurationError(f"FerretDB build failed while trying to {what}: {lines[-1]}")
    return proc.stdout


def ensure_ferretdb(tools_dir: Path) -> Path:
    tools_dir = tools_dir.resolve()
    binary = ferretdb_binary(tools_dir)
    if binary.exists():
        return binary
    with file_lock(tools_dir / ".ferretdb.lock"):
        if binary.exists():
            return binary
        go = _go()
        env = dict(os.environ, GOFLAGS="-mod=mod", CGO_ENABLED="0")
        with tempfile.TemporaryDirectory(prefix="fhirhub-ferretdb-") as tmp:
            work = Path(tmp)
            _run([go, "mod", "init", "fhirhub.local/fetch"], work, env, "create a Go module")
            out = _run(
                [go, "mod", "download", "-json", f"{FERRETDB_MODULE}@{FERRETDB_VERSION}"],
                work,
                env,
                f"download {FERRETDB_MODULE}@{FERRETDB_VERSION} from the Go module proxy",
            )
            source = Path(json.loads(out)["Dir"])
            build_dir = work / "src"
            shutil.copytree(source, build_dir)
            for path in build_dir.rglob("*"):
                path.chmod(path.stat().st_mode | 0o200)
            build_dir.chmod(0o755)
            (build_dir / "build" / "version" / "version.txt").write_text(FERRETDB_VERSION)
            partial = binary.with_name(binary.name + ".partial")
            _run(
                [go, "build", "-trimpath", "-o", str(partial), "./cmd/ferretdb"],
                build_dir,
                env,
                "compile ./cmd/ferretdb",
            )
            partial.rename(binary)
    return binary
