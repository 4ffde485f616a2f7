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


def test_please_contact_the_patient(
    auth_client: FlaskClient, auth_hub: Hub, running: NotificationWorker, mail: MailServer
) -> None:
    lead, nurse = who(auth_client, auth_hub, "lead"), who(auth_client, auth_hub, "nurse")
    request = {
        "resourceType": "CommunicationRequest",
        "status": "active",
        "subject": {"reference": "Patient/p"},
        "requester": {"reference": "Practitioner/lead"},
        "sender": {"reference": "Practitioner/nurse"},
        "recipient": [{"reference": "Patient/p"}],
        "payload": [{"contentString": "Please call about the potassium result"}],
    }
    assert nurse.send("POST", "/fhir/CommunicationRequest", request).status_code == 403
    outsider = {**request, "sender": {"reference": "Practitioner/outsider"}}
    assert lead.send("POST", "/fhir/CommunicationRequest", outsider).status_code == 422
    response = lead.send("POST", "/fhir/CommunicationRequest", request)
    assert response.status_code == 201, response.get_data(as_text=True)
    request_id = response.get_json()["id"]
    wait_for(lambda: mail.to("nurse@example.org"), 40, "the nurse's notice")
    [email] = mail.to("nurse@example.org")
    assert "potassium" not in email.text
    worklist = nurse.ids("/fhir/CommunicationRequest?sender=Practitioner/nurse&status=active")
    assert worklist == [f"CommunicationRequest/{request_id}"]
    done = {
        "resourceType": "Communication",
        "status": "completed",
        "basedOn": [{"reference": f"CommunicationRequest/{request_id}"}],
        "subject": {"reference": "Patient/p"},
        "sender": {"reference": "Practitioner/nurse"},
        "recipient": [{"reference": "Patient/p"}],
        "medium": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode",
                        "code": "PHONE",
                    }
                ]
            }
        ],
        "payload": [{"contentString": "Called; repeat test booked"}],
    }
    assert nurse.send("POST", "/fhir/Communication", done).status_code == 201

    def completed() -> bool:
        found = auth_hub.resources.read("CommunicationRequest", request_id).resource
        return bool(found and found["status"] == "completed")

    wait_for(completed, 20, "the request to complete")
