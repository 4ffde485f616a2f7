"""The waitlist: a cancellation offers the freed time to the first waitlisted patient.

A patient (their own token) or staff writes an Appointment with status `waitlist` (see
rules/waitlist.py). When a booked or held appointment with a clinician is cancelled while it
is still ahead (a reschedule cancels the original too), the worker's reaction plans one
durable timer job for that freed time, keyed by the appointment and its start, so it runs
once however often the change is seen. The job offers the time to the first entry in line
for that clinician whose patient is free then: a hold (`pending` Appointment, its
`supportingInformation` the waitlist entry, expiring after FHIRHUB_WAITLIST_OFFER_TTL) and a
message on the patient's reminder channel, recorded as a Communication. The patient takes
it with `$book` (appointment-reference); the entry is then closed (cancelled, "Booked from
the waitlist"). An offer not taken expires like any hold; that cancellation frees the time
again and the next in line is offered it. An entry is offered a given time once: each offer
lists every entry offered that time before it in `supportingInformation` (its own first).
"""

from __future__ import annotations

import copy
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from fhirhub.channels.message import Message
from fhirhub.fhir.errors import Conflict, FhirError
from fhirhub.scheduling.directory import Directory, Resource
from fhirhub.scheduling.reminders import Reminders
from fhirhub.scheduling.rules import appointments as appts
from fhirhub.scheduling.rules import reminders as reminder_rules
from fhirhub.scheduling.rules import waitlist as rules
from fhirhub.scheduling.rules.intervals import Interval
from fhirhub.scheduling.scheduler import Scheduler
from fhirhub.storage.store import utc_now_ms
from fhirhub.storage.timers import Job
from fhirhub.timers.model import Skip, TimerKind

if TYPE_CHECKING:
    from fhirhub.hub import Hub

FREED_KIND = "scheduling.waitlist-freed"
OFFER_KIND = "scheduling.waitlist-offer"
NAMESPACE = uuid.UUID("5b0e7f0a-8c1d-4f57-9a53-2f6c1e9d4b21")
CLINICIANS = ("Practitioner/", "PractitionerRole/")


class Waitlist:
    def __init__(
        self,
        hub: Hub,
        directory: Directory,
        scheduler: Scheduler,
        reminders: Reminders,
        offer_ttl: timedelta,
    ):
        self.hub = hub
        self.directory = directory
        self.scheduler = scheduler
        self.reminders = reminders
        self.offer_ttl = offer_ttl

    # -- the reaction -------------------------------------------------------------------------

    def changed(self, reference: str, current: Resource | None) -> str:
        if current is None:
            return ""
        status = current.get("status")
        if status == "booked":
            return self._close_entries(current)
        interval = appts.period(current)
        if status != "cancelled" or interval is None or interval.start <= utc_now_ms():
            return ""
        if not any(a.startswith(CLINICIANS) for a in appts.actors(current)):
            return ""
        key = f"waitlist:{reference}:{current['start']}"
        self.hub.timers.plan_once([(key, FREED_KIND, utc_now_ms(), {"appointment": reference})])
        return "freed time offered to the waitlist"

    def _close_entries(self, booked: Resource) -> str:
        patients = set(appts.patients(booked))
        closed = 0
        for ref in _supporting(booked):
            entry = self.directory.read(ref)
            if not entry or entry.get("status") != rules.WAITLIST:
                continue
            if not patients & set(appts.patients(entry)):
                continue
            done = copy.deepcopy(entry)
            done.pop("meta", None)
            done["status"] = "cancelled"
            done["cancelationReason"] = {"text": "Booked from the waitlist"}
            try:
                self.hub.resources.update("Appointment", str(entry["id"]), done)
                closed += 1
            except Conflict:
                continue  # changed meanwhile; its next change is seen again
        return f"{closed} waitlist entries closed" if closed else ""

    # -- the freed-time job -------------------------------------------------------------------

    def offer_freed(self, job: Job) -> str:
        reference = str(job.payload["appointment"])
        freed_appointment = self.directory.read(reference)
        if freed_appointment is None or freed_appointment.get("status") != "cancelled":
            raise Skip("the time is no longer free")
        freed = appts.period(freed_appointment)
        assert freed is not None
        offer_id = str(uuid.uuid5(NAMESPACE, f"{reference}|{freed_appointment['start']}"))
        if self.directory.read(f"Appointment/{offer_id}") is not None:
            return self._plan_message(offer_id)  # made before a crash: only the message left
        skip = {ref.split("/")[1] for ref in _supporting(freed_appointment)}
        clinicians = {self.directory.person(a) for a in appts.actors(freed_appointment)}
        clinicians = {c for c in clinicians if c.startswith(CLINICIANS)}
        for entry, interval in rules.first_in_line(
            self._entries(clinicians), freed, skip, utc_now_ms()
        ):
            offer = self._offer(entry, interval, sorted(skip))
            try:
                self.scheduler.hold(offer, ttl=self.offer_ttl, resource_id=offer_id)
            except FhirError:
                continue  # that patient is not free then (or no longer bookable): the next
            return self._plan_message(offer_id)
        raise Skip("nobody on the waitlist can take the time")

    def _entries(self, clinicians: set[str]) -> list[Resource]:
        refs = set(clinicians)
        for clinician in clinicians:
            if clinician.startswith("Practitioner/"):
                refs |= {f"PractitionerRole/{r['id']}" for r in self.directory.roles_of(clinician)}
        found: dict[str, Resource] = {}
        for ref in sorted(refs):
            for entry in self.directory.find("Appointment", f"actor={ref}&status=waitlist"):
                found[str(entry["id"])] = entry
        return list(found.values())

    def _offer(self, entry: Resource, interval: Interval, skipped: list[str]) -> Resource:
        offer: Resource = {"resourceType": "Appointment", "status": "proposed"}
        for name in ("serviceCategory", "serviceType", "specialty", "appointmentType"):
            if entry.get(name):
                offer[name] = copy.deepcopy(entry[name])
        offer["description"] = "Earlier time offered from the waitlist"
        offer["start"] = _instant(interval.start)
        offer["end"] = _instant(interval.end)
        offer["supportingInformation"] = [
            {"reference": f"Appointment/{i}"} for i in [str(entry["id"]), *skipped]
        ]
        offer["participant"] = [
            {"actor": copy.deepcopy(p["actor"]), "required": p.get("required", "required")}
            for p in entry.get("participant") or []
            if isinstance(p, dict) and isinstance(p.get("actor"), dict)
        ]
        return offer

    def _plan_message(self, offer_id: str) -> str:
        key = f"waitlist-offer:Appointment/{offer_id}"
        self.hub.timers.plan_once([(key, OFFER_KIND, utc_now_ms(), {"appointment": offer_id})])
        return f"offered as Appointment/{offer_id}"

    # -- the offer message job ----------------------------------------------------------------

    def send_offer(self, job: Job) -> str:
        message = self._message(job)
        return self.hub.channels.send(message)

    def _message(self, job: Job) -> Message:
        offer_id = str(job.payload["appointment"])
        offer = self.directory.read(f"Appointment/{offer_id}")
        if offer is None or offer.get("status") != "pending":
            raise Skip("the offer was taken, declined or expired")
        patients = appts.patients(offer)
        patient = self.directory.read(patients[0]) if patients else None
        if patient is None:
            raise Skip("the offer has no known patient")
        prefs = reminder_rules.preferences(patient)
        about = (f"Appointment/{offer_id}",)
        stub = Message(job.key, "email", "", "(not sent)", recipient=patients[0], about=about)
        if prefs.opt_out:
            self.hub.channels.not_sent(stub, "the patient opted out of reminders")
            raise Skip("opted out")
        available = {c for c in ("email", "sms", "rest-hook") if self.hub.channels.available(c)}
        found = reminder_rules.contact(patient, prefs, available)
        if found is None:
            self.hub.channels.not_sent(stub, "no contact on a configured channel")
            raise Skip("no contact")
        lang = reminder_rules.language(patient, set(rules.OFFER_TEMPLATES))
        role, who, where, phone = self.reminders.place(offer)
        interval = appts.period(offer)
        assert interval is not None
        subject, text = reminder_rules.render(
            rules.OFFER_TEMPLATES,
            lang,
            interval.start,
            self.directory.zone(role),
            who,
            where,
            phone,
        )
        return Message(
            job.key,
            found[0],
            found[1],
            text,
            subject=subject,
            language=lang,
            recipient=patients[0],
            about=about,
            category="notification",
        )

    def ended(self, job: Job, state: str, reason: str) -> None:
        try:
            message = self._message(job)
        except Skip:
            return
        self.hub.channels.not_sent(message, reason)


def _supporting(appointment: Resource) -> list[str]:
    out = []
    for ref in appointment.get("supportingInformation") or []:
        value = (ref or {}).get("reference") if isinstance(ref, dict) else None
        if isinstance(value, str) and value.startswith("Appointment/") and value.count("/") == 1:
            out.append(value)
    return out


def _instant(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def register(
    hub: Hub, directory: Directory, scheduler: Scheduler, reminders: Reminders
) -> Waitlist:
    waitlist = Waitlist(
        hub, directory, scheduler, reminders, timedelta(seconds=hub.settings.waitlist_offer_ttl_s)
    )
    base = timedelta(seconds=hub.settings.reminder_retry_base_s)
    hub.timer_kinds.register(TimerKind(FREED_KIND, waitlist.offer_freed, retry_base=base))
    hub.timer_kinds.register(
        TimerKind(OFFER_KIND, waitlist.send_offer, waitlist.ended, 12, base, timedelta(minutes=5))
    )
    return waitlist
