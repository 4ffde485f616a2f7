"""The time zone an actor works in (pure): the `timezone` extension (IANA code) on its
Location or Organization, R4's `tz-code` as well, else the server default."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

TIMEZONE = "http://hl7.org/fhir/StructureDefinition/timezone"
TZ_CODE = "http://hl7.org/fhir/StructureDefinition/tz-code"


def declared_zone(resource: dict[str, Any] | None) -> ZoneInfo | None:
    for extension in (resource or {}).get("extension") or []:
        if isinstance(extension, dict) and extension.get("url") in (TIMEZONE, TZ_CODE):
            code = extension.get("valueCode") or extension.get("valueString")
            if isinstance(code, str):
                try:
                    return ZoneInfo(code)
                except (ZoneInfoNotFoundError, ValueError):
                    return None
    return None


def zone_of(*resources: dict[str, Any] | None, default: ZoneInfo) -> ZoneInfo:
    """The first zone declared by `resources` (Location, then Organization), else default."""
    for resource in resources:
        zone = declared_zone(resource)
        if zone is not None:
            return zone
    return default
