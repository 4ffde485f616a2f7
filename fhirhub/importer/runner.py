"""Running an import: each file on its own, so one bad file never stops the rest."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fhirhub.fhir.errors import FhirError
from fhirhub.importer.sources import read_units
from fhirhub.importer.state import ImportState
from fhirhub.service.bundles import BundleService

_ENTRY_PREFIX = re.compile(r"Bundle\.entry\[\d+\]: ")


@dataclass
class FileResult:
    path: Path
    loaded: int = 0
    rejected: int = 0
    skipped: bool = False
    error: str | None = None
    reasons: Counter[str] = field(default_factory=Counter)


def reason_class(message: str) -> str:
    """Group rejections: drop entry positions and quoted values that differ per resource."""
    text = _ENTRY_PREFIX.sub("", message)
    text = re.sub(r"'[^']*'", "'…'", text)
    return re.sub(r"\b[0-9a-f]{8}-[0-9a-f-]{27}\b", "<uuid>", text)[:160]


def _outcome_text(outcome: dict[str, Any]) -> str:
    issues = outcome.get("issue") or [{}]
    return str(issues[0].get("diagnostics", "rejected"))


class Importer:
    def __init__(
        self,
        bundles: BundleService,
        state: ImportState | None,
        on_progress: Callable[[int], None] = lambda n: None,
    ):
        self.bundles = bundles
        self.state = state
        self.on_progress = on_progress

    def import_file(self, path: Path) -> FileResult:
        result = FileResult(path)
        if self.state is not None and self.state.done(path):
            result.skipped = True
            return result
        start = self.state.line(path) if self.state is not None else 0
        try:
            for unit in read_units(path, start):
                for reason in unit.bad_lines:
                    result.rejected += 1
                    result.reasons[reason_class(reason)] += 1
                if unit.resources:
                    self._send(unit.payload, unit.resources, result)
                if self.state is not None and unit.position:
                    self.state.record(path, done=False, line=unit.position)
        except FhirError as error:
            result.error = error.diagnostics
            result.reasons[reason_class(error.diagnostics)] += 1
        except (OSError, ValueError) as error:
            result.error = f"{type(error).__name__}: {error}"
            result.reasons[reason_class(result.error)] += 1
        if self.state is not None and result.error is None:
            self.state.record(path, done=True)
        return result

    def _send(self, payload: dict[str, Any], size: int, result: FileResult) -> None:
        try:
            response = self.bundles.process(payload)
        except FhirError as error:
            # A transaction is all-or-nothing: every entry is rejected for one reason.
            result.rejected += size
            result.reasons[reason_class(error.diagnostics)] += 1
            self.on_progress(size)
            if payload.get("type") == "transaction":
                result.error = error.diagnostics
            return
        for entry in response.get("entry", []):
            status = str(entry.get("response", {}).get("status", ""))
            if status[:1] == "2":
                result.loaded += 1
            else:
                result.rejected += 1
                text = _outcome_text(entry.get("response", {}).get("outcome", {}))
                result.reasons[reason_class(text)] += 1
        self.on_progress(size)
