"""SMS through an HTTP gateway: FHIRHUB_SMS_URL (credentials in the URL become HTTP basic
auth), one JSON POST per message:

    {"to": "+15550100", "from": "<FHIRHUB_SMS_FROM>", "body": "...", "reference": "<id>"}

with an `Idempotency-Key` header (the same for every retry of the message). 2xx: sent (a
JSON answer's `id` or `sid` is kept as the gateway's reference); 408, 429 and 5xx:
retried; other 4xx: refused. Twilio-style gateways accept this shape or need only a thin
adapter.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
import orjson

from fhirhub.channels.message import Message, Outcome

RETRIED = frozenset({408, 425, 429})


class SmsChannel:
    resend_safe = True  # the gateway de-duplicates on Idempotency-Key

    def __init__(self, url: str, sender: str, timeout_s: float):
        parts = urlsplit(url)
        self.auth = (
            (unquote(parts.username), unquote(parts.password or "")) if parts.username else None
        )
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        self.url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
        self.sender = sender
        self.client = httpx.Client(
            timeout=httpx.Timeout(timeout_s), follow_redirects=False, trust_env=False
        )

    def close(self) -> None:
        self.client.close()

    def send(self, message: Message, handing_over: object = None) -> Outcome:
        body = {
            "to": message.to,
            "from": self.sender,
            "body": message.text,
            "reference": message.idempotency_key,
        }
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": message.idempotency_key,
        }
        auth: httpx.Auth = httpx.BasicAuth(*self.auth) if self.auth else httpx.Auth()
        try:
            response = self.client.post(
                self.url, content=orjson.dumps(body), headers=headers, auth=auth
            )
        except httpx.HTTPError as failure:
            return Outcome.transient(f"SMS gateway: {type(failure).__name__}: {failure}")
        status = response.status_code
        if 200 <= status < 300:
            return Outcome.sent(_reference(response))
        problem = f"SMS gateway answered {status}"
        if status >= 500 or status in RETRIED:
            return Outcome.transient(problem)
        return Outcome.refused(problem)


def _reference(response: httpx.Response) -> str:
    try:
        answer = response.json()
    except ValueError:
        return ""
    if isinstance(answer, dict):
        for key in ("id", "sid", "message_id"):
            if isinstance(answer.get(key), str):
                return str(answer[key])[:200]
    return ""
