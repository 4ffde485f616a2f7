"""Patients' reminder preferences end to end (the reminder-preferences extension and
Patient.communication), through a real worker and a real SMTP server: the reminder in the
patient's language, none for a patient who opted out (a not-done Communication says why),
and a reminder due in quiet hours held until they end; patients set them (and join the
waitlist) with their own token."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask.testing import FlaskClient

from fhirhub.app import create_app
from fhirhub.config import Settings
from fhirhub.hub import Hub
from fhirhub.worker.runner import NotificationWorker
from tests import test_scheduling_reminders as reminders_tests
from tests.auth_helpers import register_app
from tests.helpers import FHIR_JSON, body
from tests.scheduling_support import PREFS, Clinic, booked, clinic, params, post
from tests.smtp_support import MailServer
from tests.test_auth_enforcement import caller
from tests.test_notifications_support import wait_for
from tests.test_scheduling_reminders import communications, soon

settings = reminders_tests.settings  # mail and sms: tests/conftest.py
NEW_YORK = ZoneInfo("America/New_York")


def _set_patient(client: FlaskClient, c: Clinic, email: str, **fields: Any) -> None:
    ref = c.patients[0]
    current = body(client.get(f"/fhir/{ref}"))
    current["telecom"] = [{"system": "email", "value": email}]
    current.update(fields)
    response = client.put(f"/fhir/{ref}", json=current, headers=FHIR_JSON)
    assert response.status_code == 200, response.get_data(as_text=True)


def _prefs(**parts: Any) -> list[dict[str, Any]]:
    kinds = {"optOut": "valueBoolean", "quietStart": "valueTime", "quietEnd": "valueTime"}
    return [
        {
            "url": PREFS,
            "extension": [{"url": name, kinds[name]: value} for name, value in parts.items()],
        }
    ]


def test_language_opt_out_and_quiet_hours(
    client: FlaskClient, hub: Hub, worker: NotificationWorker, mail: MailServer
) -> None:
    spanish, opted_out, quiet = (clinic(client, patients=1, all_day=True) for _ in range(3))
    language = {"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "es-MX"}]}}
    _set_patient(client, spanish, "ana@example.org", communication=[language])
    _set_patient(client, opted_out, "ben@example.org", extension=_prefs(optOut=True))
    now = datetime.now(NEW_YORK).replace(microsecond=0)
    quiet_end = now + timedelta(seconds=25)  # the reminder falls due 8 s from now
    _set_patient(
        client,
        quiet,
        "cleo@example.org",
        extension=_prefs(
            quietStart=(now - timedelta(minutes=1)).time().isoformat(),
            quietEnd=quiet_end.time().isoformat(),
        ),
    )
    made = [
        booked(post(client, "/fhir/Appointment/$book", params(soon(c, 0))))
        for c in (spanish, opted_out, quiet)
    ]
    [ana] = wait_for(lambda: mail.to("ana@example.org"), 40, "the Spanish reminder")
    assert ana.mail["Subject"] == "Recordatorio de cita"
    assert "Le recordamos su cita" in ana.text and "Dr. Ana Lind" in ana.text
    refused = wait_for(
        lambda: communications(client, opted_out.patients[0], f"Appointment/{made[1]['id']}"),
        20,
        "the opt-out record",
    )
    assert [r["status"] for r in refused] == ["not-done"]
    assert "opted out" in refused[0]["statusReason"]["text"]
    [cleo] = wait_for(lambda: mail.to("cleo@example.org"), 60, "the reminder after quiet hours")
    assert cleo.at >= quiet_end.astimezone(UTC).timestamp()  # held until the quiet hours end
    assert cleo.mail["Subject"] == "Appointment reminder"
    [record] = wait_for(
        lambda: communications(client, quiet.patients[0], f"Appointment/{made[2]['id']}"),
        10,
        "its record",
    )
    assert record["status"] == "completed"
    assert not mail.to("ben@example.org")


def test_patients_set_their_own_preferences_and_join_the_waitlist(
    settings: Settings, auth_hub: Hub
) -> None:
    """With their own SMART patient token a patient sets reminder preferences and joins the
    waitlist for themselves, not for anyone else."""
    staff = Hub(settings)  # the same database, no authorization: the clinic's set-up
    staff.__dict__["definitions"] = auth_hub.definitions
    try:
        c = clinic(create_app(settings, staff).test_client())
    finally:
        staff.close()
    register_app(auth_hub)
    api = create_app(auth_hub.settings, auth_hub).test_client()
    me, other = c.patients
    alice = caller(api, auth_hub, "patient/*.cruds", patient=me.split("/")[1])
    mine = body(alice.get(f"/fhir/{me}"))
    mine["extension"] = _prefs(optOut=True)
    response = alice.send("PUT", f"/fhir/{me}", mine)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert body(alice.get(f"/fhir/{me}"))["extension"] == _prefs(optOut=True)
    theirs = {
        "resourceType": "Patient",
        "id": other.split("/")[1],
        "extension": _prefs(optOut=False),
    }
    assert alice.send("PUT", f"/fhir/{other}", theirs).status_code in (403, 404)
    entry = {
        "resourceType": "Appointment",
        "status": "waitlist",
        "minutesDuration": 30,
        "participant": [
            {"actor": {"reference": me}, "status": "accepted"},
            {"actor": {"reference": c.practitioner}, "status": "accepted"},
        ],
    }
    joined = alice.send("POST", "/fhir/Appointment", entry)
    assert joined.status_code == 201, joined.get_data(as_text=True)
    entry["participant"][0]["actor"]["reference"] = other
    assert alice.send("POST", "/fhir/Appointment", entry).status_code == 403
