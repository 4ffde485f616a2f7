"""Scheduling's timers in a real worker: an expired $hold frees its time by itself, and
booked appointments get reminders by email (a real SMTP server on loopback), SMS (an HTTP
gateway) and rest-hook (an HTTP receiver), each recorded as a Communication without
clinical detail; a cancelled appointment gets none, and a reminder planned before the
worker stopped is sent once by the next worker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from fhirhub.config import Settings
from fhirhub.hub import Hub
from fhirhub.worker.runner import NotificationWorker
from tests.helpers import FHIR_JSON, body
from tests.scheduling_support import Clinic, appointment, booked, clinic, params, post
from tests.smtp_support import MailServer
from tests.test_notifications_support import Receiver, notification_settings, wait_for

LEAD = timedelta(seconds=8)  # the 2-hour reminder falls due this long after booking


@pytest.fixture
def settings(settings: Settings, mail: MailServer, sms: Receiver) -> Settings:
    return notification_settings(
        settings,
        hold_ttl_s=1,
        smtp_url=mail.url,
        smtp_from="clinic@example.org",
        sms_url=f"http://127.0.0.1:{sms.port}/sms",
        sms_from="+15550100",
        timer_poll_ms=50,
    )


def instant(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def soon(c: Clinic, patient: int) -> dict[str, Any]:
    """An appointment whose 2-hour reminder is due LEAD from now, with clinical detail the
    reminder must not carry."""
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2) + LEAD
    resource = appointment(c, instant(start), instant(start + timedelta(minutes=30)), patient)
    resource["description"] = "Follow-up of suspected melanoma"
    resource["comment"] = "Biopsy results to discuss"
    return resource


def patient_contact(client: FlaskClient, c: Clinic, index: int, telecom: dict[str, Any]) -> None:
    ref = c.patients[index]
    current = body(client.get(f"/fhir/{ref}"))
    current["telecom"] = [telecom]
    response = client.put(f"/fhir/{ref}", json=current, headers=FHIR_JSON)
    assert response.status_code == 200, response.get_data(as_text=True)


def communications(client: FlaskClient, patient: str, about: str) -> list[dict[str, Any]]:
    """The Communications recording messages to `patient` about `about` (R4 has no
    `about` search parameter)."""
    bundle = body(client.get(f"/fhir/Communication?subject={patient}"))
    found = [e["resource"] for e in bundle.get("entry", [])]
    return [r for r in found if {"reference": about} in r.get("about", [])]


def reminder_key(appointment_id: str, offset: str = "PT2H") -> str:
    return f"reminder:Appointment/{appointment_id}:{offset}"


def test_an_expired_hold_frees_the_time(
    client: FlaskClient, hub: Hub, worker: NotificationWorker
) -> None:
    c = clinic(client, all_day=True)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    proposal = appointment(c, instant(start), instant(start + timedelta(minutes=30)))
    held = booked(post(client, "/fhir/Appointment/$hold", params(proposal)))
    assert held["status"] == "pending"
    assert hub.db["slot_claims"].count_documents({}) > 0

    def expired() -> bool:
        return body(client.get(f"/fhir/Appointment/{held['id']}"))["status"] == "cancelled"

    wait_for(expired, 20, "the hold to expire")
    current = body(client.get(f"/fhir/Appointment/{held['id']}"))
    assert current["cancelationReason"]["text"] == "Hold expired"
    wait_for(lambda: hub.db["slot_claims"].count_documents({}) == 0, 5, "claims released")
    # Another patient can now book that time; booking the expired hold is refused.
    other = appointment(c, instant(start), instant(start + timedelta(minutes=30)), patient=1)
    assert booked(post(client, "/fhir/Appointment/$book", params(other)))["status"] == "booked"
    late = post(client, "/fhir/Appointment/$book", params(reference=f"Appointment/{held['id']}"))
    assert late.status_code == 409


def test_reminders_by_email_sms_and_rest_hook(
    client: FlaskClient,
    hub: Hub,
    worker: NotificationWorker,
    mail: MailServer,
    sms: Receiver,
    receiver: Receiver,
) -> None:
    # Four practitioners (one clinic each), so the four appointments can share a time.
    cs = [clinic(client, patients=1, all_day=True) for _ in range(4)]
    patient_contact(client, cs[1], 0, {"system": "phone", "use": "mobile", "value": "+15550199"})
    patient_contact(client, cs[2], 0, {"system": "url", "value": receiver.url})
    made = [booked(post(client, "/fhir/Appointment/$book", params(soon(c, 0)))) for c in cs]
    assert all(a["status"] == "booked" for a in made)
    # The fourth is cancelled before its reminder is due: no reminder, no Communication.
    cancelled = {**made[3], "status": "cancelled", "cancelationReason": {"text": "Better"}}
    booked(post(client, "/fhir/Appointment/$book", params(cancelled)))
    wait_for(lambda: len(mail.messages) >= 1 and sms.requests and receiver.requests, 40, "sends")
    [email] = mail.to("jo0@example.org")
    assert email.mail["Subject"] == "Appointment reminder"
    assert "Dr. Ana Lind" in email.text and "Harbor Clinic, Room 2" in email.text
    [text] = sms.requests
    assert text.json()["to"] == "+15550199" and text.headers["idempotency-key"]
    [hook] = receiver.requests
    assert hook.json()["resourceType"] == "Communication"
    for content in (email.text, text.json()["body"], hook.body.decode()):
        assert "melanoma" not in content and "Biopsy" not in content
    for index, medium in ((0, "EMAILWRIT"), (1, "WRITTEN"), (2, "ELECTRONIC")):
        about = f"Appointment/{made[index]['id']}"
        who = cs[index].patients[0]
        found = wait_for(lambda w=who, a=about: communications(client, w, a), 10, "the record")
        [record] = found
        assert record["status"] == "completed" and record["sent"]
        assert record["recipient"] == [{"reference": who}]
        assert record["medium"][0]["coding"][0]["code"] == medium
    assert hub.timers.store.live_job(reminder_key(made[3]["id"])) is None
    assert communications(client, cs[3].patients[0], f"Appointment/{made[3]['id']}") == []
    # The fourth patient's address (jo0@ in every clinic) got exactly the first's one mail.
    assert len(mail.messages) == 1


def test_a_reminder_planned_before_the_worker_stopped_is_sent_once(
    client: FlaskClient, hub: Hub, mail: MailServer
) -> None:
    c = clinic(client, all_day=True)
    first = NotificationWorker(hub)
    first.start()
    try:
        made = booked(post(client, "/fhir/Appointment/$book", params(soon(c, 0))))
        key = reminder_key(made["id"])
        wait_for(lambda: hub.timers.store.live_job(key), 15, "the reminder to be planned")
    finally:
        first.shutdown()
    due = hub.timers.store.live_job(key)
    assert due is not None and not mail.messages
    # No worker runs while it falls due; the next one sends it (once).
    wait_for(lambda: datetime.now(UTC) > due.due + timedelta(seconds=1), 20, "the due time")
    second = NotificationWorker(hub)
    second.start()
    try:
        wait_for(lambda: mail.messages, 20, "the late reminder")
        records = wait_for(
            lambda: communications(client, c.patients[0], f"Appointment/{made['id']}"),
            10,
            "its record",
        )
    finally:
        second.shutdown()
    assert len(mail.messages) == 1 and len(records) == 1
    assert records[0]["status"] == "completed"
