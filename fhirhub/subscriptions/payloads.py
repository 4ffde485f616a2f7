"""Notification request bodies and headers (pure).

Care-team Endpoints get an R4 history Bundle with one entry (request/response as in
history); the entry carries the event code, the patient(s) and the care team(s) as
extensions, and the resource unless the Endpoint asks for id-only or it was deleted.
Subscriptions follow R4 rest-hook: no body without channel.payload, else the resource.
Every request is signed Medplum-style: X-Signature = hex HMAC-SHA256(secret, body).
Secrets inside a resource sent (an Endpoint's or Subscription's own) are masked.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from fhirhub.storage.store import fhir_instant
from fhirhub.subscriptions.events import ChangeEvent
from fhirhub.subscriptions.model import (
    NOTIFICATION_CARE_TEAM,
    NOTIFICATION_EVENT,
    NOTIFICATION_PATIENT,
    Subscriber,
)
from fhirhub.subscriptions.secrets import masked

HEADER_LINE = re.compile(r"^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([^\r\n]*)$")
_STATUS = {"create": "201 Created", "update": "200 OK", "delete": "204 No Content"}


@dataclass(frozen=True)
class Notification:
    body: bytes
    headers: dict[str, str]


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def parse_header_line(line: str) -> tuple[str, str] | None:
    match = HEADER_LINE.match(line.strip())
    return (match.group(1), match.group(2).strip()) if match else None


def care_team_bundle(
    event: ChangeEvent,
    base: str,
    patients: list[str],
    care_teams: list[str],
    include_resource: bool,
    now: datetime,
) -> dict[str, Any]:
    extensions: list[dict[str, Any]] = [{"url": NOTIFICATION_EVENT, "valueCode": event.operation}]
    extensions += [
        {"url": NOTIFICATION_PATIENT, "valueReference": {"reference": p}} for p in patients
    ]
    extensions += [
        {"url": NOTIFICATION_CARE_TEAM, "valueReference": {"reference": t}} for t in care_teams
    ]
    method = {"create": "POST", "update": "PUT", "delete": "DELETE"}[event.operation]
    entry: dict[str, Any] = {
        "extension": extensions,
        "fullUrl": f"{base}/{event.reference}",
    }
    if include_resource and not event.deleted and event.resource is not None:
        entry["resource"] = masked(event.resource)
    entry["request"] = {
        "method": method,
        "url": event.resource_type if method == "POST" else event.reference,
    }
    entry["response"] = {
        "status": _STATUS[event.operation],
        "location": event.version_reference,
        "etag": f'W/"{event.version}"',
        "lastModified": fhir_instant(event.timestamp),
    }
    return {
        "resourceType": "Bundle",
        "id": event.event_id,
        "meta": {"lastUpdated": fhir_instant(now)},
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{event.event_id}"},
        "type": "history",
        "timestamp": fhir_instant(now),
        "entry": [entry],
    }


def build_notification(
    subscriber: Subscriber,
    event: ChangeEvent,
    attempt: int,
    bundle: dict[str, Any] | None,
) -> Notification:
    """`bundle` is the care-team Bundle; None for a Subscription (R4 rest-hook)."""
    if bundle is not None:
        body = orjson.dumps(bundle)
    elif subscriber.mime and not event.deleted and event.resource is not None:
        body = orjson.dumps(masked(event.resource))
    else:
        body = b""
    headers: dict[str, str] = {}
    for line in subscriber.headers:
        parsed = parse_header_line(line)
        if parsed:
            headers[parsed[0]] = parsed[1]
    if body:
        headers["Content-Type"] = f"{subscriber.mime or 'application/fhir+json'}; charset=utf-8"
    headers.update(
        {
            "User-Agent": "fhirhub-notifications",
            "X-Fhirhub-Event-Id": event.event_id,
            "X-Fhirhub-Event": event.operation,
            "X-Fhirhub-Resource": event.version_reference,
            "X-Fhirhub-Subscriber": subscriber.key,
            "X-Fhirhub-Attempt": str(attempt),
        }
    )
    if subscriber.secret:
        headers["X-Signature"] = sign(subscriber.secret, body)
    return Notification(body, headers)
