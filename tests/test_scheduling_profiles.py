"""Every extension of ours that scheduling reads or writes is a StructureDefinition in
profiles/, and each of those definitions is valid R4 (the server's own validation accepts
it)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from tests.helpers import create

ROOT = Path(__file__).resolve().parents[1]
OURS = re.compile(r'"(https://fhirhub\.example/fhir/StructureDefinition/[a-z0-9-]+)"')


def _profiles() -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted((ROOT / "profiles").glob("*.json")):
        resource = json.loads(path.read_text())
        out[resource["url"]] = resource
    return out


def test_every_scheduling_extension_has_a_structure_definition() -> None:
    used = {
        url
        for path in (ROOT / "fhirhub" / "scheduling").rglob("*.py")
        for url in OURS.findall(path.read_text())
    }
    assert len(used) >= 3
    profiles = _profiles()
    missing = sorted(used - set(profiles))
    assert not missing, missing
    for url in used:
        definition = profiles[url]
        assert definition["resourceType"] == "StructureDefinition"
        assert definition["type"] == "Extension" and definition["context"]
        assert definition["url"].endswith("/" + definition["id"])


def test_profiles_are_valid_r4(client: FlaskClient) -> None:
    for resource in _profiles().values():
        response = create(client, resource)
        assert response.status_code == 201, response.get_data(as_text=True)
