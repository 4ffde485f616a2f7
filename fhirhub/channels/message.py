"""An outbound message and what sending it came to (pure)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

EMAIL = "email"
SMS = "sms"
REST_HOOK = "rest-hook"
CHANNELS = (EMAIL, SMS, REST_HOOK)
NAMESPACE = uuid.UUID("0c7f4c8e-3f59-4f1e-8b1e-6a0f2f0b7d11")


@dataclass(frozen=True)
class Message:
    """`key` identifies the message for good: retries, other workers and the Communication
    that records it all derive from it, so a message is sent (and recorded) once."""

    key: str
    channel: str
    to: str  # email address, phone number (E.164) or rest-hook URL
    text: str
    subject: str = ""
    language: str = "en"
    recipient: str | None = None  # "Patient/123"
    about: tuple[str, ...] = ()  # "Appointment/456"
    category: str = "notification"  # communication-category code
    extra: dict[str, Any] = field(default_factory=dict)  # channel headers (rest-hook)

    @property
    def communication_id(self) -> str:
        return str(uuid.uuid5(NAMESPACE, self.key))

    @property
    def idempotency_key(self) -> str:
        return self.communication_id


@dataclass(frozen=True)
class Outcome:
    ok: bool
    error: str = ""
    permanent: bool = False  # retrying cannot help (refused recipient, bad address)
    # The receiver may have the message although we saw no answer (the connection broke
    # while the mail server was accepting it).
    in_doubt: bool = False
    reference: str = ""  # the gateway's id for the message, when it gives one

    @classmethod
    def sent(cls, reference: str = "") -> Outcome:
        return cls(True, reference=reference)

    @classmethod
    def transient(cls, error: str, in_doubt: bool = False) -> Outcome:
        return cls(False, error=error, in_doubt=in_doubt)

    @classmethod
    def refused(cls, error: str) -> Outcome:
        return cls(False, error=error, permanent=True)
