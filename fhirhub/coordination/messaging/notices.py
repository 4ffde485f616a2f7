"""Telling recipients that a message waits, by email or SMS, with no clinical content.

On a committed new message the worker expands its recipients (a CareTeam: its current
members; never the sender) and plans one durable timer job per person, keyed by message
and person, so a repeated event or a crashed worker sends each notice once. The job sends
the fixed notice text (rules.NOTICE_TEXT: no patient, subject or payload) on the person's
email, else mobile, through the channels, which record it as a Communication.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from fhirhub.channels.message import Message
from fhirhub.channels.service import Channels
from fhirhub.coordination.messaging import rules
from fhirhub.coordination.referrals.rules import reference
from fhirhub.storage.timers import Job
from fhirhub.subscriptions.events import ChangeEvent
from fhirhub.timers.model import Skip, TimerKind
from fhirhub.timers.registry import Timers

KIND = "coordination.message-notice"
PERSONS = ("Practitioner", "PractitionerRole", "Patient", "RelatedPerson", "Organization")
Resource = dict[str, Any]


class Notices:
    def __init__(
        self,
        read: Callable[[str, str], Resource | None],
        timers: Callable[[], Timers],
        channels: Callable[[], Channels],
        clock: Callable[[], datetime],
    ):
        self.read = read
        self.timers = timers
        self.channels = channels
        self.clock = clock

    def persons(self, message: Resource) -> list[str]:
        sender = reference(message.get("sender"))
        found: list[str] = []
        for ref in rules.recipients(message):
            kind, _, rid = ref.partition("/")
            if kind == "CareTeam":
                team = self.read("CareTeam", rid) or {}
                if team.get("status") == "active":
                    found += [
                        m
                        for p in team.get("participant") or []
                        if (m := reference(p.get("member"))) and m.split("/")[0] in PERSONS
                    ]
            elif kind in PERSONS:
                found.append(ref)
        return [p for p in dict.fromkeys(found) if p != sender]

    def message_written(self, event: ChangeEvent) -> str:
        message = event.resource
        if event.operation != "create" or message is None or rules.is_channel_record(message):
            return "not a new message"
        if message.get("status") not in ("completed", "in-progress"):
            return "not sent yet"
        return self._plan(event.reference, self.persons(message))

    def request_written(self, event: ChangeEvent) -> str:
        """A new active CommunicationRequest: its sender (who is asked to get in touch) is
        told that a request waits."""
        request = event.resource
        if event.operation != "create" or request is None or request.get("status") != "active":
            return "not a new request"
        sender = reference(request.get("sender"))
        return self._plan(event.reference, [sender] if sender else [])

    def _plan(self, about: str, persons: list[str]) -> str:
        now = self.clock()
        key = about.replace("/", ":")
        jobs = [
            (f"{KIND}:{key}:{person}", KIND, now, {"about": about, "person": person})
            for person in persons
        ]
        self.timers().plan_once(jobs)
        return f"{len(jobs)} notices planned"

    def _message(self, job: Job) -> tuple[Message, str]:
        person = str(job.payload.get("person"))
        about = (str(job.payload.get("about")),)
        patient = person if person.startswith("Patient/") else None
        stub = Message(job.key, "email", "", "(not sent)", recipient=patient, about=about)
        found = self.read(*person.split("/", 1)) if "/" in person else None
        if found is None:
            return stub, f"{person} no longer exists"
        channels = self.channels()
        available = {c for c in ("email", "sms") if channels.available(c)}
        contact = rules.contact(found, available)
        if contact is None:
            return stub, f"{person} has no email or mobile on a configured channel"
        channel, address = contact
        message = Message(
            job.key,
            channel,
            address,
            rules.NOTICE_TEXT,
            subject=rules.NOTICE_SUBJECT,
            recipient=patient,
            about=about,
            category="notification",
        )
        return message, ""

    def send(self, job: Job) -> str:
        about = str(job.payload.get("about"))
        if "/" not in about or self.read(*about.split("/", 1)) is None:
            raise Skip(f"{about} no longer exists")
        message, problem = self._message(job)
        if problem:
            self.channels().not_sent(message, problem)
            raise Skip(problem)
        return self.channels().send(message)

    def ended(self, job: Job, state: str, reason: str) -> None:
        message, _ = self._message(job)
        self.channels().not_sent(message, reason)

    def kind(self) -> TimerKind:
        return TimerKind(
            KIND, self.send, self.ended, 12, timedelta(seconds=2), timedelta(minutes=5)
        )
