"""Secure-messaging rules (pure): who may be addressed, attachments, read status, threads,
and the notice a recipient gets by email or SMS (which carries no clinical content).

A message is a Communication. Its recipients are Practitioners, PractitionerRoles,
Patients, RelatedPersons, CareTeams (reaching their current members) or Organizations; a
message to a patient has that patient as `subject`. Attachments (payload.contentAttachment)
are inline `data` or a `url` to a Binary on this server: the content type must be on the
allow-list, the decoded size within the limit, and a given `hash` (base64 SHA-1, R4
Attachment.hash) must match the bytes. Per-recipient read status is the extension
READ_STATUS, written by the server only ($mark-read).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import datetime
from typing import Any

from fhirhub.coordination.referrals.rules import reference

Resource = dict[str, Any]
RECIPIENT_TYPES = frozenset(
    {"Practitioner", "PractitionerRole", "Patient", "RelatedPerson", "CareTeam", "Organization"}
)
SENDER_TYPES = RECIPIENT_TYPES - {"CareTeam"}
ALLOWED_TYPES = frozenset(
    {
        "application/pdf",
        "text/plain",
        "image/png",
        "image/jpeg",
        "application/xml",  # CDA documents, kept as opaque content
        "text/xml",
        "application/hl7-v3+xml",
    }
)
MAX_BYTES = 10 * 1024 * 1024
READ_STATUS = "https://fhirhub.example/fhir/StructureDefinition/communication-read-status"
OUTBOUND_RECORD = "urn:fhirhub:outbound-message"  # channels' own records (channels/records.py)
NOTICE_SUBJECT = "New secure message"
NOTICE_TEXT = (
    "You have a new secure message from your care team. "
    "Please sign in to read it. Do not reply to this notice."
)


def is_channel_record(message: Resource) -> bool:
    """A Communication the channels wrote to record a notice they sent (not a message)."""
    return any(
        isinstance(i, dict) and i.get("system") == OUTBOUND_RECORD
        for i in message.get("identifier") or []
    )


def recipients(message: Resource) -> list[str]:
    return [r for item in message.get("recipient") or [] if (r := reference(item))]


def recipient_problems(message: Resource) -> list[str]:
    problems = []
    subject = reference(message.get("subject"))
    found = recipients(message)
    if not found:
        problems.append("a message needs at least one recipient")
    for ref in found:
        kind = ref.split("/")[0]
        if kind not in RECIPIENT_TYPES or ref.count("/") != 1:
            problems.append(
                f"{ref} cannot receive messages (allowed: local references to "
                + ", ".join(sorted(RECIPIENT_TYPES))
                + ")"
            )
        elif kind == "Patient" and subject != ref:
            problems.append(f"a message to {ref} has that patient as its subject")
    sender = reference(message.get("sender"))
    if sender is not None and sender.split("/")[0] not in SENDER_TYPES:
        problems.append(f"{sender} cannot send messages")
    return problems


def attachments(message: Resource) -> list[Resource]:
    return [
        p["contentAttachment"]
        for p in message.get("payload") or []
        if isinstance(p, dict) and isinstance(p.get("contentAttachment"), dict)
    ]


def content_problems(
    content_type: Any, data: bytes | None, given_hash: Any, what: str, limit: int = MAX_BYTES
) -> list[str]:
    problems = []
    if str(content_type or "").split(";")[0].strip() not in ALLOWED_TYPES:
        problems.append(
            f"{what}: content type {content_type!r} is not allowed (allowed: "
            + ", ".join(sorted(ALLOWED_TYPES))
            + ")"
        )
    if data is not None and len(data) > limit:
        problems.append(f"{what}: {len(data)} bytes is over the limit of {limit}")
    if data is not None and given_hash is not None and given_hash != sha1(data):
        problems.append(f"{what}: hash does not match the content (base64 SHA-1 expected)")
    return problems


def decoded(data: Any) -> bytes | None:
    if not isinstance(data, str):
        return None
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None


def sha1(data: bytes) -> str:
    return base64.b64encode(hashlib.sha1(data).digest()).decode()


def read_status(message: Resource) -> dict[str, str]:
    """Recipient reference -> when they read it."""
    found: dict[str, str] = {}
    for ext in message.get("extension") or []:
        if ext.get("url") != READ_STATUS:
            continue
        parts = {e.get("url"): e for e in ext.get("extension") or []}
        who = reference((parts.get("recipient") or {}).get("valueReference"))
        when = (parts.get("read") or {}).get("valueDateTime")
        if who and isinstance(when, str):
            found[who] = when
    return found


def marked_read(message: Resource, who: str, now: datetime) -> Resource | None:
    """The message with `who`'s read time (and `received`, if unset); None if already read."""
    if who in read_status(message):
        return None
    stamp = now.isoformat(timespec="seconds")
    entry = {
        "url": READ_STATUS,
        "extension": [
            {"url": "recipient", "valueReference": {"reference": who}},
            {"url": "read", "valueDateTime": stamp},
        ],
    }
    updated = {**message, "extension": [*(message.get("extension") or []), entry]}
    updated.setdefault("received", stamp)
    return updated


def read_entries(message: Resource | None) -> list[Any]:
    return [e for e in (message or {}).get("extension") or [] if e.get("url") == READ_STATUS]


def thread_of(message: Resource) -> str:
    """The thread a message belongs to: its partOf, else what it answers, else itself."""
    for name in ("partOf", "inResponseTo"):
        for item in message.get(name) or []:
            ref = reference(item)
            if ref and ref.startswith("Communication/"):
                return ref
    return f"Communication/{message.get('id')}"


def contact(person: Resource, available: set[str]) -> tuple[str, str] | None:
    """(channel, address) for a notice: an email address first, else a mobile for SMS."""
    options = []
    for telecom in person.get("telecom") or []:
        value, system = telecom.get("value"), telecom.get("system")
        if not isinstance(value, str) or (telecom.get("period") or {}).get("end"):
            continue
        if system == "email" and "email" in available:
            options.append((0, telecom.get("rank", 1000), "email", value))
        elif (
            system in ("sms", "phone")
            and "sms" in available
            and (system == "sms" or telecom.get("use") == "mobile")
        ):
            options.append((1, telecom.get("rank", 1000), "sms", value))
    if not options:
        return None
    best = min(options, key=lambda o: (o[0], o[1] if isinstance(o[1], int) else 1000))
    return best[2], best[3]
