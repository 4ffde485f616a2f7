"""The Communication that records an outbound message (pure)."""

from __future__ import annotations

from typing import Any

from fhirhub.channels.message import EMAIL, SMS, Message

CATEGORY = "http://terminology.hl7.org/CodeSystem/communication-category"
MODE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode"
IDENTIFIER_SYSTEM = "urn:fhirhub:outbound-message"
MEDIUM = {
    EMAIL: {"coding": [{"system": MODE, "code": "EMAILWRIT", "display": "email"}]},
    # v3 ParticipationMode (R4) has no SMS code: written, electronic, named in the text.
    SMS: {"coding": [{"system": MODE, "code": "WRITTEN", "display": "written"}], "text": "SMS"},
}
REST_HOOK_MEDIUM = {
    "coding": [{"system": MODE, "code": "ELECTRONIC", "display": "electronic data"}],
    "text": "FHIR rest-hook",
}


def communication(
    message: Message, status: str, sent: str | None = None, reason: str = ""
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Communication",
        "id": message.communication_id,
        "identifier": [{"system": IDENTIFIER_SYSTEM, "value": message.key[:1000]}],
        "status": status,
    }
    if reason:
        resource["statusReason"] = {"text": reason[:1000]}
    resource["category"] = [{"coding": [{"system": CATEGORY, "code": message.category}]}]
    resource["medium"] = [MEDIUM.get(message.channel, REST_HOOK_MEDIUM)]
    if message.recipient:
        resource["subject"] = {"reference": message.recipient}
    if message.about:
        resource["about"] = [{"reference": ref} for ref in message.about]
    if sent:
        resource["sent"] = sent
    if message.recipient:
        resource["recipient"] = [{"reference": message.recipient}]
    resource["payload"] = [{"contentString": message.text}]
    resource["language"] = message.language
    return resource
