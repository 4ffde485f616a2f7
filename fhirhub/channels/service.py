"""Sending a message once and recording it as a Communication.

Called by timer handlers in the worker (under the job's lease). A transient failure raises
`Retry` (the timer runner backs off and tries again); a refusal records the Communication
as not-done and raises `GiveUp`; when the job finally ends without success its kind calls
`not_sent`, which records why. A message found `sending` (the previous attempt died while
the receiver was taking it) is resent only on channels with an idempotency key; on SMTP it
is recorded as `unknown` instead, so a patient never gets it twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from fhirhub.channels.message import Message, Outcome
from fhirhub.channels.records import communication
from fhirhub.storage.outbound import IN_DOUBT, NOT_SENT, SENDING, SENT, OutboundStore
from fhirhub.storage.store import fhir_instant, utc_now_ms
from fhirhub.timers.model import GiveUp, Retry

log = logging.getLogger(__name__)


class Channel(Protocol):
    resend_safe: bool

    def send(self, message: Message, handing_over: Callable[[], None]) -> Outcome: ...


class Recorder(Protocol):
    """Writes the Communication (ResourceService.update in the worker)."""

    def __call__(self, resource: dict[str, Any]) -> None: ...


class Channels:
    def __init__(
        self,
        channels: dict[str, Channel],
        store: OutboundStore,
        record: Recorder,
        exists: Callable[[str], bool],
        clock: Callable[[], datetime] = utc_now_ms,
    ):
        self.channels = channels
        self.store = store
        self.record = record
        self.exists = exists  # is the Communication with this id stored?
        self.clock = clock

    def available(self, channel: str) -> bool:
        return channel in self.channels

    def send(self, message: Message) -> str:
        """Send (at most once where it matters); returns a note. Raises Retry or GiveUp."""
        state = self.store.state(message.key)
        if state is not None and state["st"] in (SENT, NOT_SENT, IN_DOUBT):
            if not self.exists(message.communication_id):  # died before recording it
                self._record_final(message, state)
            return f"already {state['st']}"
        channel = self.channels.get(message.channel)
        if channel is None:
            reason = f"no {message.channel} channel is configured"
            self._finish(message, NOT_SENT, reason)
            raise GiveUp(reason)
        if state is not None and state["st"] == SENDING and not channel.resend_safe:
            reason = (
                "the previous attempt stopped while the server was accepting the message; "
                "not sent again, so it is not received twice"
            )
            self._finish(message, IN_DOUBT, reason)
            return "in doubt; not resent"

        def handing_over() -> None:
            self.store.put(message.key, message.channel, SENDING, self.clock())

        if channel.resend_safe:
            handing_over()  # the receiver de-duplicates: mark before the request
            outcome = channel.send(message, lambda: None)
        else:
            outcome = channel.send(message, handing_over)
        if outcome.ok:
            self._finish(message, SENT, "", outcome.reference)
            return f"sent by {message.channel}"
        if outcome.permanent:
            self._finish(message, NOT_SENT, outcome.error)
            raise GiveUp(outcome.error)
        if not outcome.in_doubt:  # certainly not delivered: forget the hand-over mark
            self.store.forget(message.key)
        raise Retry(outcome.error)

    def not_sent(self, message: Message, reason: str) -> None:
        """The job ended without sending (gave up, too late, nothing to send)."""
        state = self.store.state(message.key)
        if state is not None and state["st"] in (SENT, IN_DOUBT):
            if not self.exists(message.communication_id):
                self._record_final(message, state)
            return
        self._finish(message, NOT_SENT, reason)

    def _finish(self, message: Message, state: str, reason: str, ref: str = "") -> None:
        now = self.clock()
        self.store.put(message.key, message.channel, state, now, reason, ref)
        self._record_final(message, {"st": state, "at": now, "err": reason})

    def _record_final(self, message: Message, state: dict[str, Any]) -> None:
        status = {SENT: "completed", NOT_SENT: "not-done", IN_DOUBT: "unknown"}[state["st"]]
        sent = fhir_instant(state["at"]) if state["st"] == SENT else None
        self.record(communication(message, status, sent, state.get("err") or ""))
