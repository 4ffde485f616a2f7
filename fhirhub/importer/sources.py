"""Finding import files and reading them into units of work (one unit = one write call)."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fhirhub.fhir.errors import BadRequest
from fhirhub.fhir.json_body import parse_json

SUFFIXES = (".json", ".ndjson", ".json.gz", ".ndjson.gz")
# Synthea writes shared Organizations/Practitioners to separate files that patient bundles
# reference conditionally, so those must be loaded first.
FIRST = ("hospitalinformation", "practitionerinformation")
NDJSON_CHUNK = 500


@dataclass(frozen=True)
class Unit:
    """Something to send to the server: a batch/transaction Bundle or one resource."""

    payload: dict[str, Any]
    resources: int
    position: int  # NDJSON: line number after this unit; JSON files: 0
    # NDJSON lines of this unit that are not even a FHIR JSON resource (rejected alone,
    # like a resource the server refuses; the rest of the file still loads).
    bad_lines: tuple[str, ...] = ()


def discover(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(p for p in path.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES))
        elif path.exists():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path} does not exist")
    unique = sorted(set(files))
    return sorted(unique, key=lambda p: (not p.name.lower().startswith(FIRST), str(p)))


def _read(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


def is_ndjson(path: Path) -> bool:
    return ".ndjson" in path.name


def read_units(path: Path, start_line: int = 0) -> Iterator[Unit]:
    if is_ndjson(path):
        yield from _ndjson_units(path, start_line)
        return
    value = parse_json(_read(path))
    if not isinstance(value, dict) or "resourceType" not in value:
        raise BadRequest("file is not a FHIR resource")
    if value["resourceType"] == "Bundle" and value.get("type") in ("transaction", "batch"):
        yield Unit(value, len(value.get("entry") or []), 0)
    else:
        yield Unit(_as_batch([value]), 1, 0)


def _ndjson_units(path: Path, start_line: int) -> Iterator[Unit]:
    lines = _read(path).splitlines()
    chunk: list[dict[str, Any]] = []
    bad: list[str] = []
    for number, line in enumerate(lines[start_line:], start=start_line + 1):
        if not line.strip():
            continue
        try:
            resource = parse_json(line)
        except BadRequest as error:
            bad.append(error.diagnostics)
            continue
        if not isinstance(resource, dict) or "resourceType" not in resource:
            bad.append("the line is not a FHIR resource")
            continue
        chunk.append(resource)
        if len(chunk) >= NDJSON_CHUNK:
            yield Unit(_as_batch(chunk), len(chunk), number, tuple(bad))
            chunk, bad = [], []
    if chunk or bad:
        yield Unit(_as_batch(chunk), len(chunk), len(lines), tuple(bad))


def _as_batch(resources: list[dict[str, Any]]) -> dict[str, Any]:
    """Resources with an id keep it (PUT), so references between files still resolve."""
    entries = []
    for resource in resources:
        kind = resource["resourceType"]
        if resource.get("id"):
            request = {"method": "PUT", "url": f"{kind}/{resource['id']}"}
        else:
            request = {"method": "POST", "url": kind}
        entries.append({"resource": resource, "request": request})
    return {"resourceType": "Bundle", "type": "batch", "entry": entries}
