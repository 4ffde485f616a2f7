"""Missing data: no reading for the CarePlan's expected period reminds the patient (email
over a real SMTP server, recorded as a Communication), and one period later tells the team
(a missing-data alert), which the next reading closes."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from fhirhub.config import Settings
from fhirhub.hub import Hub
from fhirhub.worker.runner import NotificationWorker
from tests.helpers import body, create
from tests.monitoring_support import ago, alerts, enrol, vital, wait_alert
from tests.smtp_support import MailServer
from tests.test_notifications_support import notification_settings, wait_for

ADDRESS = "patient@example.org"


@pytest.fixture
def settings(settings: Settings, mail: MailServer) -> Settings:
    return notification_settings(settings, smtp_url=mail.url, timer_poll_ms=50)


def test_missing_readings_remind_the_patient_then_alert_the_team(
    client: FlaskClient, hub: Hub, worker: NotificationWorker, mail: MailServer
) -> None:
    patient_resource = {
        "resourceType": "Patient",
        "telecom": [{"system": "email", "value": ADDRESS}],
    }
    patient = f"Patient/{body(create(client, patient_resource))['id']}"
    # A weight expected every 2 seconds (a real plan says 1 per day; the rule is the same).
    enrol(client, patient, ["29463-7"], frequency=1, period=2, periodUnit="s")
    create(client, vital(patient, "29463-7", 80, "kg", ago(seconds=1)))
    reminder = wait_for(lambda: mail.to(ADDRESS), 45, "the reminder email")[0]
    assert "weight reading" in reminder.text

    def recorded() -> bool:  # written once the server has taken the message
        communications = body(client.get("/fhir/Communication")).get("entry") or []
        return any(e["resource"]["status"] == "completed" for e in communications)

    wait_for(recorded, 30, "the reminder's Communication")
    flag = wait_alert(client, patient, "missing-data")
    task = wait_for(lambda: alerts(client, patient, "missing-data", "Task"), 30, "its Task")[0]
    assert "no weight reading since" in task["description"]
    # The next reading closes it.
    create(client, vital(patient, "29463-7", 80.2, "kg", ago(seconds=0)))
    closed = wait_alert(client, patient, "missing-data", status="inactive")
    assert closed["id"] == flag["id"]
