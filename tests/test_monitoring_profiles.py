"""Every extension and profile the monitoring layer writes or reads has its
StructureDefinition in profiles/, and each one is a valid R4 StructureDefinition."""

from __future__ import annotations

import json
import re
from pathlib import Path

from flask.testing import FlaskClient

from fhirhub.monitoring.alerts import model as alerts_model
from fhirhub.monitoring.risk import model as risk_model
from tests.helpers import create

ROOT = Path(__file__).resolve().parent.parent
PROFILES = ROOT / "profiles"
MONITORING = ROOT / "fhirhub" / "monitoring"
MONITORING_PROFILES = (
    "monitoring-alert",
    "risk-score-total",
    "monitoring-careplan",
    "monitoring-alert-flag",
    "monitoring-alert-task",
    "risk-score-assessment",
    "monitoring-reading-issue",
)


def test_every_structure_definition_url_in_the_code_has_a_file() -> None:
    urls = set()
    for module in MONITORING.rglob("*.py"):
        urls |= set(
            re.findall(
                r"https://fhirhub\.example/fhir/StructureDefinition/[a-z0-9-]+", module.read_text()
            )
        )
    assert {alerts_model.ALERT_EXTENSION, risk_model.SCORE_EXTENSION} <= urls
    shipped = {json.loads(p.read_text())["url"] for p in PROFILES.glob("*.json")}
    assert urls <= shipped


def test_monitoring_profiles_are_valid_r4_structure_definitions(client: FlaskClient) -> None:
    for name in MONITORING_PROFILES:
        definition = json.loads((PROFILES / f"{name}.json").read_text())
        assert definition["id"] == name
        assert definition["url"].endswith(f"/StructureDefinition/{name}")
        for element in definition["differential"]["element"]:
            assert element["id"].split(":")[0].split(".")[0] == element["path"].split(".")[0]
        response = create(client, {k: v for k, v in definition.items() if k != "id"})
        assert response.status_code == 201, response.get_json()
