"""Resumable imports: a small JSON file records finished files and NDJSON progress."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class ImportState:
    def __init__(self, path: Path):
        self.path = path
        self.data: dict[str, Any] = {}
        if path.exists():
            self.data = json.loads(path.read_text())

    @staticmethod
    def fingerprint(file: Path) -> str:
        stat = file.stat()
        return f"{file.resolve()}:{stat.st_size}:{int(stat.st_mtime)}"

    def done(self, file: Path) -> bool:
        return bool(self.data.get(self.fingerprint(file), {}).get("done"))

    def line(self, file: Path) -> int:
        return int(self.data.get(self.fingerprint(file), {}).get("line", 0))

    def record(self, file: Path, *, done: bool, line: int = 0) -> None:
        self.data[self.fingerprint(file)] = {"done": done, "line": line}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data))
        os.replace(tmp, self.path)  # atomic, so a killed import never corrupts the state
