"""The monitoring rules table: shipped data, a site's overrides, per-organisation changes.

`knowledge/rules.json` ships the defaults with their sources. A site points
FHIRHUB_MONITORING_RULES at a JSON file of the same shape (checked with jsonschema at start)
whose `rules` replace shipped rules by id or add new ones, and whose `organizations` map
"Organization/id" to per-rule changes (any rule field, or `"enabled": false`) for patients
whose `managingOrganization` it is. No code changes per rule.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jsonschema

from fhirhub.fhir.errors import ConfigurationError

SHIPPED = Path(__file__).parent.parent / "knowledge" / "rules.json"
KINDS = ("below", "above", "at-or-above", "gain", "consecutive", "score", "missing")
PRIORITIES = ("routine", "urgent", "asap", "stat")

_RULE: dict[str, Any] = {
    "type": "object",
    "required": ["id"],
    "properties": {
        "id": {"type": "string", "pattern": "^[a-z0-9-]{1,40}$"},
        "title": {"type": "string"},
        "kind": {"enum": list(KINDS)},
        "measure": {"type": "string"},
        "value": {"type": "number"},
        "goal": {"enum": ["low", "high"]},
        "count": {"type": "integer", "minimum": 2},
        "window_days": {"type": "number", "exclusiveMinimum": 0},
        "priority": {"enum": list(PRIORITIES)},
        "escalate_after_min": {"type": "number", "minimum": 0},
        "resolve_after_min": {"type": "number", "minimum": 0},
        "enabled": {"type": "boolean"},
        "source": {"type": "string"},
    },
    "additionalProperties": False,
}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "rules": {"type": "array", "items": _RULE},
        "organizations": {
            "type": "object",
            "propertyNames": {"pattern": "^Organization/[A-Za-z0-9.-]{1,64}$"},
            "additionalProperties": {
                "type": "object",
                "additionalProperties": {**_RULE, "required": []},
            },
        },
        "tiers": {"type": "array"},
        "defaults": {"type": "object"},
    },
}


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    kind: str
    measure: str
    value: float
    priority: str = "routine"
    goal: str | None = None
    count: int = 3
    window_days: float = 3.0
    escalate_after_min: float = 30.0
    resolve_after_min: float = 60.0
    enabled: bool = True
    source: str = ""


@dataclass
class Knowledge:
    rules: dict[str, Rule]
    tiers: list[tuple[str, frozenset[str]]]
    sources: dict[str, str]
    organizations: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def for_organization(self, organization: str | None) -> list[Rule]:
        changes = self.organizations.get(organization or "", {})
        out = []
        for rule in self.rules.values():
            if rule.id in changes:
                rule = replace(rule, **changes[rule.id])
            if rule.enabled:
                out.append(rule)
        return out

    def rule(self, rule_id: str, organization: str | None = None) -> Rule | None:
        rule = self.rules.get(rule_id)
        change = self.organizations.get(organization or "", {}).get(rule_id)
        return replace(rule, **change) if rule and change else rule


def _rule(raw: dict[str, Any], defaults: dict[str, Any]) -> Rule:
    values = {**defaults, **raw}
    if "kind" not in values or "measure" not in values or "value" not in values:
        raise ConfigurationError(f"monitoring rule {raw.get('id')}: kind, measure, value needed")
    values.setdefault("title", values["id"])
    return Rule(**values)


def load(site_file: str = "") -> Knowledge:
    shipped = json.loads(SHIPPED.read_text())
    defaults = shipped.get("defaults", {})
    rules = {r["id"]: _rule(r, defaults) for r in shipped["rules"]}
    organizations: dict[str, dict[str, dict[str, Any]]] = {}
    tiers = shipped["tiers"]
    if site_file:
        try:
            site = json.loads(Path(site_file).read_text())
            jsonschema.validate(site, SCHEMA)
        except (OSError, ValueError, jsonschema.ValidationError) as error:
            message = getattr(error, "message", str(error))
            raise ConfigurationError(f"FHIRHUB_MONITORING_RULES {site_file}: {message}") from None
        for raw in site.get("rules", []):
            base = rules.get(raw["id"])
            merged = {**base.__dict__, **raw} if base else {**defaults, **raw}
            rules[raw["id"]] = _rule(merged, {})
        organizations = site.get("organizations", {})
        tiers = site.get("tiers", tiers)
    return Knowledge(
        rules,
        [(t["name"], frozenset(c.lower() for c in t["codes"])) for t in tiers],
        shipped["sources"],
        organizations,
    )
