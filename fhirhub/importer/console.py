"""Progress display and summary for `fhirhub import` (rich)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from fhirhub.importer.runner import FileResult, Importer
from fhirhub.importer.sources import read_units
from fhirhub.importer.state import ImportState
from fhirhub.service.bundles import BundleService


def count_resources(files: list[Path]) -> int:
    total = 0
    for path in files:
        try:
            total += sum(unit.resources for unit in read_units(path))
        except Exception:  # counted as one failing unit; the import reports why
            total += 1
    return total


def run_import(
    bundles: BundleService, files: list[Path], state: ImportState | None, console: Console
) -> list[FileResult]:
    total = count_resources(files)
    results: list[FileResult] = []
    started = time.monotonic()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.completed}/{task.total} resources"),
        TextColumn("{task.fields[rate]:>7.0f} resources/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("importing", total=total, rate=0.0)
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            done += n
            rate = done / max(time.monotonic() - started, 1e-6)
            progress.update(task, advance=n, rate=rate)

        importer = Importer(bundles, state, advance)
        for path in files:
            progress.update(task, description=path.name[:40])
            result = importer.import_file(path)
            if result.skipped:
                advance(count_resources([path]))
            results.append(result)
        progress.update(task, description="done")
    return results


def print_summary(results: list[FileResult], elapsed: float, console: Console) -> None:
    loaded = sum(r.loaded for r in results)
    rejected = sum(r.rejected for r in results)
    skipped = sum(1 for r in results if r.skipped)
    failed = [r for r in results if r.error]
    console.print(
        f"{len(results)} files ({skipped} skipped as already imported, {len(failed)} with errors): "
        f"{loaded} resources loaded, {rejected} rejected in {elapsed:.1f} s "
        f"({loaded / max(elapsed, 1e-6):.0f} resources/s)"
    )
    reasons: Counter[str] = Counter()
    for result in results:
        reasons.update(result.reasons)
    if reasons:
        table = Table("count", "rejection reason", title="Rejections by reason")
        for reason, count in reasons.most_common(25):
            table.add_row(str(count), reason)
        console.print(table)
    for result in failed[:20]:
        console.print(f"[red]{result.path}[/red]: {result.error}")
