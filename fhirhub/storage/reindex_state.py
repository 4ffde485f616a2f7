"""Where a reindex run got to, kept in search_stats (`~reindex`) after every batch, so a
run that was stopped (a crash, a deploy, ^C) resumes instead of starting over."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pymongo.collection import Collection

MARKER = "~reindex"


@dataclass(frozen=True)
class Report:
    """Progress of one type in one phase ("resources": current documents, "versions")."""

    phase: str
    resource_type: str
    done: int
    total: int
    changed: int  # documents changed so far in the whole run


Progress = Callable[[Report], None]


@dataclass
class ReindexState:
    collection: Collection
    scope: list[str]
    done: list[str] = field(default_factory=list)
    at: str | None = None  # "phase:Type" being worked on
    after: str | None = None  # the last `_id` of `at` that is reindexed
    changed: int = 0
    resumed: bool = False

    @classmethod
    def load(cls, collection: Collection, scope: list[str], restart: bool) -> ReindexState:
        """The recorded run over the same types, or a new one."""
        doc: dict[str, Any] | None = collection.find_one({"_id": MARKER})
        if doc is None or restart or doc.get("scope") != scope:
            state = cls(collection, scope)
            state._save()
            return state
        return cls(
            collection,
            scope,
            done=list(doc.get("done") or []),
            at=doc.get("at"),
            after=doc.get("after"),
            changed=int(doc.get("changed") or 0),
            resumed=True,
        )

    def begin(self, phase: str, resource_type: str) -> bool:
        """Start (or resume) a type's phase; False when it was done already."""
        step = f"{phase}:{resource_type}"
        if step in self.done:
            return False
        if self.at != step:
            if self.at is not None:
                self.done.append(self.at)
            self.at, self.after = step, None
            self._save()
        return True

    def record(self, after: str | None) -> None:
        self.after = after
        self._save()

    def finish(self) -> int:
        """The run is complete: forget it; returns how many documents it changed."""
        self.collection.delete_one({"_id": MARKER})
        return self.changed

    def _save(self) -> None:
        fields = {
            "scope": self.scope,
            "done": self.done,
            "at": self.at,
            "after": self.after,
            "changed": self.changed,
        }
        self.collection.replace_one({"_id": MARKER}, fields, upsert=True)


class ProgressPrinter:
    """Prints a line per type when it is done, and every few seconds within a long one,
    with the rate (for `fhirhub reindex`)."""

    def __init__(self, echo: Callable[[str], None], every_s: float = 5.0):
        self.echo = echo
        self.every_s = every_s
        self.started = time.monotonic()
        self._last = self.started
        self.documents = 0
        self._counted: dict[tuple[str, str], int] = {}

    def __call__(self, report: Report) -> None:
        step = (report.phase, report.resource_type)
        self.documents += report.done - self._counted.get(step, 0)
        self._counted[step] = report.done
        now = time.monotonic()
        if report.done < report.total and now - self._last < self.every_s:
            return
        self._last = now
        self.echo(
            f"{report.phase} {report.resource_type}: {report.done:,}/{report.total:,}; "
            f"{report.changed:,} changed so far; {self.summary()}"
        )

    def summary(self) -> str:
        elapsed = time.monotonic() - self.started
        return f"{self.documents:,} documents in {elapsed:.1f} s, {self.rate():,.0f}/s"

    def rate(self) -> float:
        return self.documents / max(time.monotonic() - self.started, 1e-6)
