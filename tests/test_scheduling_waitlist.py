"""The waitlist through the FHIR API, a real worker and a real SMTP server: a cancellation
offers the freed time to the first waitlisted patient (a hold and an email, recorded as a
Communication); an offer not taken expires and goes to the next in line; the patient who
books it has their waitlist entry closed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient

from fhirhub.config import Settings
from fhirhub.hub import Hub
from fhirhub.scheduling.rules import waitlist as rules
from fhirhub.scheduling.rules.intervals import Interval
from fhirhub.worker.runner import NotificationWorker
from tests.helpers import FHIR_JSON, body
from tests.scheduling_support import Clinic, appointment, booked, clinic, params, post
from tests.smtp_support import MailServer
from tests.test_notifications_support import notification_settings, wait_for
from tests.test_scheduling_reminders import communications, instant


@pytest.fixture
def settings(settings: Settings, mail: MailServer) -> Settings:
    return notification_settings(
        settings,
        waitlist_offer_ttl_s=3,  # an offer not taken within 3 s goes to the next in line
        smtp_url=mail.url,
        smtp_from="clinic@example.org",
        timer_poll_ms=50,
    )


def _entry(c: Clinic, patient: int, until: datetime, created: str) -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "status": "waitlist",
        "created": created,
        "minutesDuration": 30,
        "requestedPeriod": [{"start": instant(datetime.now(UTC)), "end": instant(until)}],
        "participant": [
            {"actor": {"reference": c.patients[patient]}, "status": "accepted"},
            {"actor": {"reference": c.practitioner}, "status": "accepted"},
        ],
    }


def _offers(client: FlaskClient, patient: str) -> list[dict[str, Any]]:
    found = body(client.get(f"/fhir/Appointment?patient={patient}&status=pending"))
    return [e["resource"] for e in found.get("entry", [])]


def test_a_cancellation_goes_to_the_waitlist(
    client: FlaskClient, hub: Hub, worker: NotificationWorker, mail: MailServer
) -> None:
    c = clinic(client, patients=3, all_day=True)
    start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=2, hours=3)
    start -= timedelta(minutes=start.minute % 15)
    end = start + timedelta(minutes=30)
    made = booked(
        post(
            client, "/fhir/Appointment/$book", params(appointment(c, instant(start), instant(end)))
        )
    )
    until = start + timedelta(days=5)
    first = body(
        client.post("/fhir/Appointment", json=_entry(c, 1, until, "2026-01-01"), headers=FHIR_JSON)
    )
    second = body(
        client.post("/fhir/Appointment", json=_entry(c, 2, until, "2026-01-02"), headers=FHIR_JSON)
    )
    assert first["status"] == second["status"] == "waitlist"
    # The booked patient cancels: the first in line is offered the time.
    cancelled = {**made, "status": "cancelled", "cancelationReason": {"text": "Away"}}
    booked(post(client, "/fhir/Appointment/$book", params(cancelled)))
    [offer] = wait_for(lambda: _offers(client, c.patients[1]), 30, "the first offer")
    assert offer["start"] == instant(start) and offer["end"] == instant(end)
    assert offer["supportingInformation"] == [{"reference": f"Appointment/{first['id']}"}]
    mails = wait_for(lambda: mail.to("jo1@example.org"), 20, "the offer email")
    assert mails[0].mail["Subject"] == "An earlier appointment is available"
    assert "Dr. Ana Lind" in mails[0].text
    records = wait_for(
        lambda: communications(client, c.patients[1], f"Appointment/{offer['id']}"), 10, "record"
    )
    assert [r["status"] for r in records] == ["completed"]
    # Not taken: the hold expires and the next in line is offered the same time.
    [again] = wait_for(lambda: _offers(client, c.patients[2]), 30, "the second offer")
    assert again["start"] == instant(start)
    assert again["supportingInformation"] == [
        {"reference": f"Appointment/{second['id']}"},
        {"reference": f"Appointment/{first['id']}"},
    ]
    gone = body(client.get(f"/fhir/Appointment/{offer['id']}"))
    assert gone["status"] == "cancelled"
    wait_for(lambda: mail.to("jo2@example.org"), 20, "the second offer email")
    # The second patient takes it; their entry is closed, the first one's still waits.
    taken = booked(
        post(client, "/fhir/Appointment/$book", params(reference=f"Appointment/{again['id']}"))
    )
    assert taken["status"] == "booked"

    def closed() -> bool:
        return body(client.get(f"/fhir/Appointment/{second['id']}"))["status"] == "cancelled"

    wait_for(closed, 20, "the waitlist entry to close")
    entry = body(client.get(f"/fhir/Appointment/{second['id']}"))
    assert entry["cancelationReason"]["text"] == "Booked from the waitlist"
    assert body(client.get(f"/fhir/Appointment/{first['id']}"))["status"] == "waitlist"
    assert len(mail.to("jo1@example.org")) == 1  # offered once


def test_first_in_line_rules() -> None:
    now = datetime(2030, 3, 1, 9, tzinfo=UTC)
    freed = Interval(now + timedelta(days=1), now + timedelta(days=1, minutes=30))

    def entry(
        i: str, created: str, minutes: int = 30, until: datetime | None = None
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"id": i, "status": "waitlist", "created": created}
        out["minutesDuration"] = minutes
        if until is not None:
            out["requestedPeriod"] = [{"start": "2030-03-01", "end": instant(until)}]
        return out

    entries = [
        entry("late", "2030-02-03"),
        entry("early", "2030-02-01"),
        entry("too-long", "2030-01-01", minutes=45),
        entry("not-then", "2030-01-02", until=now + timedelta(hours=5)),
        entry("skipped", "2030-01-03"),
        {**entry("booked", "2030-01-04"), "status": "cancelled"},
    ]
    order = [e["id"] for e, _ in rules.first_in_line(entries, freed, {"skipped"}, now)]
    assert order == ["early", "late"]
    assert rules.first_in_line(entries, freed, set(), freed.start) == []  # already begun
