"""What a failed notification means, and what happens next (pure; no IO).

Two kinds of failure are told apart:
- the receiver is *unavailable*: no answer (refused connection, timeout, DNS) or an answer
  that says so (408, 425, 429, 502, 503, 504). Nothing is wrong with the event, so these
  attempts never count against it: the head of the queue is retried with exponential
  backoff (capped) and everything behind it waits, in order, for up to the retry horizon,
  measured from the first failure. A receiver unavailable for longer than the horizon is
  taken to be gone: the event is dead-lettered and the subscriber set to `error`.
- the receiver *refused* this event: any other non-2xx answer (400, 404, 422, 500, ...).
  After `max_refusals` refusals the event becomes a *suspect*: the delivery agent then
  sends the next events of the queue as probes. If the receiver accepts one, the suspects
  before it are poison and are dead-lettered alone (the subscriber stays active and the
  queue moves on, in order); if it refuses them too, the receiver refuses everything
  (a broken receiver, not a bad event), so nothing is dropped and the queue keeps waiting,
  up to the horizon, after which a still-refused event is dead-lettered alone.
A receiver's Retry-After (seconds) lengthens the wait, up to the cap.
A forbidden address is the subscriber's fault, not the event's: dead letter and `error` at
once.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from fhirhub.worker.sender import SendResult

# Answers that say "not now" rather than "not this".
UNAVAILABLE_STATUSES = frozenset({408, 425, 429, 502, 503, 504})


class Failure(enum.Enum):
    UNAVAILABLE = "unavailable"
    REFUSED = "refused"
    FORBIDDEN = "forbidden"


def failure_kind(result: SendResult) -> Failure:
    if result.permanent:
        return Failure.FORBIDDEN
    if result.status is None or result.status in UNAVAILABLE_STATUSES:
        return Failure.UNAVAILABLE
    return Failure.REFUSED


class Next(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"  # the queue waits for `next`
    SUSPECT = "suspect"  # retry too, but probe the events behind it first
    DEAD_EVENT = "dead-event"  # dead-letter this event alone; the queue moves on
    DEAD_SUBSCRIBER = "dead-subscriber"  # dead-letter and set the subscriber to error


@dataclass(frozen=True)
class RetryPolicy:
    max_refusals: int
    base: timedelta
    cap: timedelta
    horizon: timedelta

    def delay(self, attempts: int) -> timedelta:
        raw = min(self.base * (2 ** min(attempts - 1, 30)), self.cap)
        return raw * random.uniform(0.8, 1.2)


@dataclass(frozen=True)
class Decision:
    next: Next
    fields: dict[str, Any] = field(default_factory=dict)  # to record on the delivery


def decide(
    policy: RetryPolicy, delivery: dict[str, Any], result: SendResult, now: datetime
) -> Decision:
    attempts = int(delivery.get("n", 0)) + 1
    fields: dict[str, Any] = {"n": attempts, "at": now, "code": result.status}
    if result.ok:
        return Decision(Next.DELIVERED, {**fields, "err": ""})
    kind = failure_kind(result)
    first = delivery.get("first") or now
    refusals = int(delivery.get("nr", 0)) + (kind is Failure.REFUSED)
    fields.update(err=result.error, first=first, nr=refusals, kind=kind.value)
    if kind is Failure.FORBIDDEN:
        return Decision(Next.DEAD_SUBSCRIBER, fields)
    if now - first >= policy.horizon:
        gone = kind is Failure.UNAVAILABLE
        return Decision(Next.DEAD_SUBSCRIBER if gone else Next.DEAD_EVENT, fields)
    wait = policy.delay(attempts)
    if result.retry_after_s is not None:  # the receiver says when; within the cap
        wait = max(wait, min(timedelta(seconds=result.retry_after_s), policy.cap))
    fields["next"] = now + wait
    if kind is Failure.REFUSED and refusals >= policy.max_refusals:
        return Decision(Next.SUSPECT, fields)
    return Decision(Next.RETRY, fields)
