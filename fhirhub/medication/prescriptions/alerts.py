"""Messages the medication features send through the outbound channels (worker only):
the prescriber's alert of a high-severity DetectedIssue, refill decisions and running-out
reminders to the patient. Each is a durable timer job keyed by what it is about, so it is
sent once, and each sent message is recorded as a Communication by the channels module.

Messages carry no clinical detail (email and SMS are not secure): they name the resource
to open in the EHR or patient app.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fhirhub.channels.message import EMAIL, SMS, Message
from fhirhub.timers.model import Skip

Read = Callable[[str], "dict[str, Any] | None"]  # "Type/id" -> current resource or None


def contact(person: dict[str, Any] | None, available: Callable[[str], bool]) -> tuple[str, str]:
    """(channel, address) of the first email or SMS-capable phone on a configured channel."""
    for telecom in (person or {}).get("telecom") or []:
        system, value = telecom.get("system"), telecom.get("value")
        if system == "email":
            channel = EMAIL
        elif system in ("sms", "phone") and telecom.get("use") in (None, "mobile"):
            channel = SMS
        else:
            continue
        if value and available(channel):
            return channel, str(value)
    return "", ""


def person_of(reference: str, read: Read) -> tuple[str, dict[str, Any] | None]:
    """A Practitioner, Patient or RelatedPerson with telecom; a PractitionerRole answers
    with its own telecom or else its practitioner's."""
    found = read(reference) if "/" in reference else None
    if reference.startswith("PractitionerRole/") and found and not found.get("telecom"):
        practitioner = str((found.get("practitioner") or {}).get("reference", ""))
        if practitioner.startswith("Practitioner/"):
            return practitioner, read(practitioner)
    return reference, found


def message_to(
    key: str,
    reference: str,
    read: Read,
    channels: Any,
    subject: str,
    text: str,
    about: tuple[str, ...],
    category: str,
) -> str:
    """Send `text` to the person `reference` names, or record why it was not sent."""
    who, person = person_of(reference, read)
    channel, address = contact(person, channels.available)
    message = Message(
        key,
        channel or EMAIL,
        address,
        text,
        subject=subject,
        recipient=who or None,
        about=about,
        category=category,
    )
    if not channel:
        channels.not_sent(message, f"{who or 'the recipient'} has no email or SMS contact")
        raise Skip("no contact on a configured channel")
    return str(channels.send(message))


def prescriber_alert(read: Read, channels: Any, issue_id: str, order_ref: str) -> str:
    issue = read(f"DetectedIssue/{issue_id}")
    if issue is None or issue.get("status") == "cancelled":
        raise Skip("the issue was withdrawn")
    order = read(order_ref) or {}
    requester = str((order.get("requester") or {}).get("reference", ""))
    if not requester.startswith(("Practitioner/", "PractitionerRole/")):
        raise Skip("the order names no practitioner as requester")
    code = ((issue.get("code") or {}).get("coding") or [{}])[0].get("display", "safety issue")
    text = (
        f"A high-severity medication safety issue ({code}) was recorded on {order_ref}: "
        f"open DetectedIssue/{issue_id} in the record to review it."
    )
    return message_to(
        f"medication-alert:{issue_id}",
        requester,
        read,
        channels,
        "Medication safety alert",
        text,
        (f"DetectedIssue/{issue_id}", order_ref),
        "alert",
    )
