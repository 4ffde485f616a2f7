"""Appointment reminders: planned as durable timers when an appointment is booked (a
reaction), re-planned when it moves, withdrawn when it is cancelled, and sent by the
worker through the patient's channel. The handler checks the appointment again right
before sending, so a reminder never goes out for a cancelled or moved appointment even
if a re-plan is still on its way; a reminder whose appointment has started is recorded as
not-done (its deadline is the start)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from fhirhub.channels.message import EMAIL, Message
from fhirhub.fhir.errors import ConfigurationError
from fhirhub.scheduling.directory import Directory, Resource
from fhirhub.scheduling.rules import appointments as appts
from fhirhub.scheduling.rules import reminders as rules
from fhirhub.storage.store import utc_now_ms
from fhirhub.storage.timers import Job
from fhirhub.timers.model import Defer, Skip, TimerKind

if TYPE_CHECKING:
    from fhirhub.hub import Hub

KIND = "scheduling.reminder"
REBOOK_KIND = "scheduling.rebook"


class Reminders:
    def __init__(self, hub: Hub, directory: Directory, zone: ZoneInfo):
        self.hub = hub
        self.directory = directory
        self.zone = zone
        try:
            self.default_offsets = rules.offsets(hub.settings.reminder_offsets)
        except ValueError as error:
            raise ConfigurationError(f"FHIRHUB_REMINDER_OFFSETS: {error}") from None

    # -- planning (reactions) -----------------------------------------------------------------

    def offsets_for(self, appointment: Resource) -> list[tuple[str, timedelta]]:
        for ref in appts.actors_all(appointment):
            if ref.startswith(("HealthcareService/", "PractitionerRole/")):
                found = self.directory.read(ref) or {}
                setting = rules.offsets_of(found)
                org = (found.get("organization") or found.get("providedBy") or {}).get("reference")
                if setting is None and isinstance(org, str):
                    setting = rules.offsets_of(self.directory.read(org))
                if setting:
                    try:
                        return rules.offsets(setting)
                    except ValueError:
                        continue
        return self.default_offsets

    def plan_for(self, resource_id: str, appointment: Resource | None) -> int:
        """Plan, re-plan or withdraw the reminders of one appointment; returns how many
        are planned."""
        now = utc_now_ms()
        labels = {label for label, _ in self.default_offsets}
        interval = appts.period(appointment) if appointment else None
        planned = 0
        wanted: dict[str, datetime] = {}
        booked = appointment is not None and appointment.get("status") == "booked"
        if appointment is not None and booked and interval and interval.start > now:
            for label, delta in self.offsets_for(appointment):
                labels.add(label)
                if interval.start - delta > now:
                    wanted[label] = interval.start - delta
        timers = self.hub.timers
        for label in sorted(labels):
            key = f"reminder:Appointment/{resource_id}:{label}"
            if label not in wanted or appointment is None or interval is None:
                timers.cancel(key)
                continue
            payload = {"appointment": resource_id, "start": appointment["start"], "offset": label}
            timers.plan_if_changed(key, KIND, wanted[label], payload, deadline=interval.start)
            planned += 1
        return planned

    def plan_rebook(self, resource_id: str) -> None:
        self.hub.timers.plan_once(
            [
                (
                    f"rebook:Appointment/{resource_id}",
                    REBOOK_KIND,
                    utc_now_ms(),
                    {"appointment": resource_id},
                )
            ]
        )

    # -- sending (timers) ---------------------------------------------------------------------

    def _message(self, job: Job, rebook: bool) -> tuple[Message, Resource | None, str]:
        """The message for a job, the appointment and, if nothing can be sent, why."""
        resource_id = str(job.payload.get("appointment"))
        appointment = self.directory.read(f"Appointment/{resource_id}")
        key = f"{job.key}:{job.payload.get('start', '')}"
        stub = Message(key, EMAIL, "", "(not sent)", about=(f"Appointment/{resource_id}",))
        if appointment is None:
            return stub, None, "the appointment no longer exists"
        patients = appts.patients(appointment)
        patient = self.directory.read(patients[0]) if patients else None
        if patient is None:
            return stub, appointment, "the appointment has no known patient"
        stub = Message(key, EMAIL, "", "(not sent)", recipient=patients[0], about=stub.about)
        prefs = rules.preferences(patient)
        if prefs.opt_out:
            return stub, appointment, "the patient opted out of reminders"
        available = {c for c in ("email", "sms", "rest-hook") if self.hub.channels.available(c)}
        found = rules.contact(patient, prefs, available)
        if found is None:
            return stub, appointment, "no email, SMS or rest-hook contact on a configured channel"
        channel, address = found
        templates = rules.REBOOK if rebook else rules.TEMPLATES
        lang = rules.language(patient, set(templates))
        role, who, where, phone = self.place(appointment)
        zone = self.directory.zone(role)
        interval = appts.period(appointment)
        assert interval is not None
        subject, text = rules.render(templates, lang, interval.start, zone, who, where, phone)
        message = Message(
            key,
            channel,
            address,
            text,
            subject=subject,
            language=lang,
            recipient=patients[0],
            about=(f"Appointment/{resource_id}",),
            category="reminder",
        )
        if prefs.quiet_start and (until := rules.quiet_until(utc_now_ms(), prefs, zone)):
            deadline = job.deadline or interval.start
            if until < deadline:
                raise Defer(until, "quiet hours")
        return message, appointment, ""

    def place(self, appointment: Resource) -> tuple[Resource | None, str, str, str]:
        role = None
        who = where = phone = ""
        for participant in appointment.get("participant") or []:
            ref = str((participant.get("actor") or {}).get("reference", ""))
            if ref.startswith("PractitionerRole/") and role is None:
                role = self.directory.read(ref)
            elif ref.startswith("Practitioner/") and not who:
                who = _name(self.directory.read(ref)) or (participant.get("actor") or {}).get(
                    "display", ""
                )
            elif ref.startswith("Location/") and not where:
                location = self.directory.read(ref) or {}
                where = str(location.get("name") or "")
                phone = next(
                    (
                        str(t.get("value"))
                        for t in location.get("telecom") or []
                        if t.get("system") == "phone"
                    ),
                    "",
                )
        if role is None:
            for ref in appts.actors_all(appointment):
                if ref.startswith("Practitioner/"):
                    roles = self.directory.roles_of(ref)
                    role = roles[0] if roles else None
                    break
        return role, who, where, phone

    def send(self, job: Job) -> str:
        message, appointment, problem = self._message(job, rebook=False)
        if appointment is None:
            raise Skip("the appointment no longer exists")
        if appointment.get("status") != "booked" or appointment.get("start") != job.payload.get(
            "start"
        ):
            raise Skip("the appointment was cancelled or moved")  # no Communication: not due
        interval = appts.period(appointment)
        if interval is None or interval.start <= utc_now_ms():
            self.hub.channels.not_sent(message, "the appointment has already started")
            raise Skip("the appointment has already started")
        if problem:
            self.hub.channels.not_sent(message, problem)
            raise Skip(problem)
        return self.hub.channels.send(message)

    def send_rebook(self, job: Job) -> str:
        message, appointment, problem = self._message(job, rebook=True)
        if appointment is None or appointment.get("status") != "noshow":
            raise Skip("the appointment is no longer a no-show")
        if problem:
            self.hub.channels.not_sent(message, problem)
            raise Skip(problem)
        return self.hub.channels.send(message)

    def ended(self, job: Job, state: str, reason: str) -> None:
        """Too late or given up: record it, unless the appointment itself went away."""
        try:
            message, appointment, _ = self._message(job, rebook=job.kind == REBOOK_KIND)
        except Defer:
            return
        if appointment is not None:
            self.hub.channels.not_sent(message, reason)


def _name(resource: dict[str, Any] | None) -> str:
    for name in (resource or {}).get("name") or []:
        if name.get("text"):
            return str(name["text"])
        parts = [*name.get("prefix", []), *name.get("given", []), name.get("family", "")]
        text = " ".join(p for p in parts if p)
        if text:
            return text
    return ""


def register(hub: Hub, directory: Directory, zone: ZoneInfo) -> Reminders:
    reminders = Reminders(hub, directory, zone)
    base = timedelta(seconds=hub.settings.reminder_retry_base_s)
    for name, handler in ((KIND, reminders.send), (REBOOK_KIND, reminders.send_rebook)):
        # 12 attempts, doubling to 5 min: about 45 minutes of outage is ridden out.
        kind = TimerKind(name, handler, reminders.ended, 12, base, timedelta(minutes=5))
        hub.timer_kinds.register(kind)
    hub.__dict__["reminders"] = reminders
    return reminders
