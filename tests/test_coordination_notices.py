"""Recipients of a secure message are told by email (a real SMTP server on loopback) or SMS
(a real HTTP gateway on loopback) that a message waits, once each, without clinical
content; a CareTeam recipient reaches its members, never the sender; each notice sent is
recorded as a Communication."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from fhirhub.config import Settings
from fhirhub.coordination.messaging.rules import NOTICE_TEXT
from fhirhub.hub import Hub
from fhirhub.worker.runner import NotificationWorker
from tests.coordination_support import put, who, world
from tests.smtp_support import MailServer
from tests.test_notifications_support import Receiver, notification_settings, wait_for


@pytest.fixture
def mail() -> Iterator[MailServer]:
    server = MailServer().start()
    yield server
    server.stop()


@pytest.fixture
def sms() -> Iterator[Receiver]:
    gateway = Receiver().start()
    yield gateway
    gateway.stop()


@pytest.fixture
def settings(settings: Settings, mail: MailServer, sms: Receiver) -> Settings:
    return notification_settings(
        settings,
        smtp_url=mail.url,
        smtp_from="clinic@example.org",
        sms_url=f"http://127.0.0.1:{sms.port}/sms",
        sms_from="+15550100",
        timer_poll_ms=50,
    )


@pytest.fixture
def running(auth_hub: Hub) -> Iterator[NotificationWorker]:
    world(auth_hub)
    for name, telecom in (
        ("nurse", {"system": "email", "value": "nurse@example.org"}),
        ("lead", {"system": "email", "value": "lead@example.org"}),
    ):
        current = auth_hub.resources.read("Practitioner", name).resource
        assert current is not None
        put(auth_hub, {**current, "telecom": [telecom]})
    patient = auth_hub.resources.read("Patient", "p").resource
    assert patient is not None
    put(
        auth_hub,
        {**patient, "telecom": [{"system": "phone", "use": "mobile", "value": "+15550199"}]},
    )
    worker = NotificationWorker(auth_hub)
    worker.start()
    yield worker
    worker.shutdown()


def test_recipients_get_a_notice_without_clinical_content(
    auth_client: FlaskClient,
    auth_hub: Hub,
    running: NotificationWorker,
    mail: MailServer,
    sms: Receiver,
) -> None:
    lead = who(auth_client, auth_hub, "lead")
    secret = "Potassium 6.1 mmol/L: stop spironolactone"
    for recipient in ("CareTeam/team-p", "Patient/p"):
        body = {
            "resourceType": "Communication",
            "status": "completed",
            "subject": {"reference": "Patient/p"},
            "topic": {"text": "Hyperkalaemia"},
            "sender": {"reference": "Practitioner/lead"},
            "recipient": [{"reference": recipient}],
            "payload": [{"contentString": secret}],
        }
        assert lead.send("POST", "/fhir/Communication", body).status_code == 201
    wait_for(lambda: mail.messages and sms.requests, 40, "the notices")
    [email] = mail.to("nurse@example.org")
    assert mail.to("lead@example.org") == []  # the sender is not told about their own message
    [text] = sms.requests
    assert text.json()["to"] == "+15550199"
    for content in (email.text, str(email.mail["Subject"]), text.json()["body"]):
        assert "Potassium" not in content and "Hyperkalaemia" not in content
        assert "P" not in content.split() and "spironolactone" not in content
    assert NOTICE_TEXT.split(".")[0] in email.text.replace("\n", " ")

    def records() -> list[str]:
        found = auth_hub.search.find_resources(
            "Communication", "identifier=urn:fhirhub:outbound-message|&_count=10"
        )
        return [r["status"] for r in found]

    assert wait_for(lambda: len(records()) == 2 and records(), 10, "the records") == [
        "completed",
        "completed",
    ]
    assert len(mail.messages) == 1 and len(sms.requests) == 1
