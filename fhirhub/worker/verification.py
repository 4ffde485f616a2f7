"""The verification ping a changed subscriber address must answer before it gets data.

After an address change (fhirhub/subscriptions/address_change.py) the delivery path asks
`check` before sending: the first time it POSTs an empty body to the new address with the
subscriber's headers, `X-Fhirhub-Verification: {nonce}` and the X-Signature of the empty
body (the signing secret is new for a new address unless the writer gave one). A 2xx is
recorded (storage/address_checks.py) and data follows; anything else is returned as the
delivery's failed attempt, so the queue waits and retries under the usual backoff and
horizon (worker/retries.py) and nothing is sent to an address nobody confirmed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from fhirhub.storage.address_checks import AddressChecks
from fhirhub.subscriptions.model import WEBSOCKET, Subscriber
from fhirhub.subscriptions.payloads import parse_header_line, sign
from fhirhub.worker.sender import Sender, SendResult

log = logging.getLogger(__name__)

HEADER = "X-Fhirhub-Verification"


class AddressVerifier:
    def __init__(
        self, checks: AddressChecks, sender: Callable[[], Sender], clock: Callable[[], datetime]
    ):
        self.checks = checks
        self.sender = sender
        self.clock = clock
        self._known: set[tuple[str, str]] = set()  # verified stays verified: exact cache
        self._lock = threading.Lock()

    def check(self, subscriber: Subscriber) -> SendResult | None:
        """None when data may go to the subscriber's address; else the failed ping."""
        nonce = subscriber.verify
        if not nonce or subscriber.channel == WEBSOCKET:
            return None
        key = (subscriber.key, nonce)
        with self._lock:
            if key in self._known:
                return None
        if not self.checks.verified(*key):
            result = self._ping(subscriber, nonce)
            if not result.ok:
                error = f"address verification ping not accepted: {result.error}"
                return SendResult(
                    False, result.status, error, result.permanent, result.retry_after_s
                )
            self.checks.record(subscriber.key, nonce, subscriber.address, self.clock())
            log.info("%s: new address %s verified", subscriber.key, subscriber.address)
        with self._lock:
            self._known.add(key)
        return None

    def _ping(self, subscriber: Subscriber, nonce: str) -> SendResult:
        headers: dict[str, str] = {}
        for line in subscriber.headers:
            parsed = parse_header_line(line)
            if parsed:
                headers[parsed[0]] = parsed[1]
        headers.update(
            {
                "User-Agent": "fhirhub-notifications",
                "X-Fhirhub-Subscriber": subscriber.key,
                HEADER: nonce,
            }
        )
        if subscriber.secret:
            headers["X-Signature"] = sign(subscriber.secret, b"")
        return self.sender().send(subscriber.address, b"", headers)
