"""FHIR rest-hook: the message as a Communication resource POSTed to an endpoint address,
through the worker's Sender (address allowlist, pinned DNS). Receivers de-duplicate on
X-Fhirhub-Event-Id, the same for every retry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from fhirhub.channels.message import Message, Outcome
from fhirhub.worker.sender import Sender


class RestHookChannel:
    resend_safe = True

    def __init__(self, sender: Sender, render: Callable[[Message], dict[str, Any]]):
        self.sender = sender
        self.render = render  # the Communication the message is recorded as

    def send(self, message: Message, handing_over: object = None) -> Outcome:
        headers = {
            "Content-Type": "application/fhir+json",
            "X-Fhirhub-Event-Id": message.idempotency_key,
            **{str(k): str(v) for k, v in message.extra.items()},
        }
        result = self.sender.send(message.to, orjson.dumps(self.render(message)), headers)
        if result.ok:
            return Outcome.sent()
        client_error = result.status is not None and 400 <= result.status < 500
        if result.permanent or (client_error and result.status not in (408, 429)):
            return Outcome.refused(result.error or f"answered {result.status}")
        return Outcome.transient(result.error or f"answered {result.status}")
