"""The supervisor's record of each part, in a small JSON file under the var directory.

The supervisor rewrites it (atomically, by rename) whenever something changes and at least
every second; web processes read it for `/healthz`. A file nobody refreshed for
STALE_AFTER_S belongs to a supervisor that is gone, and is ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

UP = "up"
RESTARTING = "restarting"  # died; waiting for its backoff or being started again
STOPPED = "stopped"  # serve is shutting down
STALE_AFTER_S = 5.0


def board_path(var_dir: Path) -> Path:
    return var_dir / "serve-status.json"


@dataclass
class PartState:
    state: str = UP
    pid: int | None = None
    restarts: int = 0
    since: float = 0.0  # when the current state began (epoch seconds)
    last_exit: str = ""
    next_attempt: float | None = None


class Board:
    def __init__(self, path: Path):
        self.path = path
        self.parts: dict[str, PartState] = {}
        self._written = 0.0

    def set(self, name: str, **changes: Any) -> PartState:
        part = self.parts.setdefault(name, PartState(since=time.time()))
        if "state" in changes and changes["state"] != part.state:
            part.since = time.time()
        for key, value in changes.items():
            setattr(part, key, value)
        self.write()
        return part

    def heartbeat(self) -> None:
        if time.time() - self._written >= 1.0:
            self.write()

    def write(self) -> None:
        now = time.time()
        document = {
            "supervisor": os.getpid(),
            "updated": now,
            "parts": {name: asdict(part) for name, part in self.parts.items()},
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + f".{os.getpid()}")
        partial.write_text(json.dumps(document))
        partial.replace(self.path)
        self._written = now

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def read_board(path: Path) -> dict[str, dict[str, Any]] | None:
    """The parts' states from a live supervisor's board, or None (no supervisor)."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if time.time() - float(document.get("updated", 0)) > STALE_AFTER_S:
        return None
    supervisor = int(document.get("supervisor", 0))
    if supervisor <= 0:
        return None
    with contextlib.suppress(PermissionError):
        try:
            os.kill(supervisor, 0)
        except (ProcessLookupError, OverflowError, ValueError):
            return None
    parts: dict[str, dict[str, Any]] = document.get("parts") or {}
    return parts
