"""Outbound channels against real receivers: email through a real SMTP server on loopback
(plain, STARTTLS with login), SMS through an HTTP gateway, rest-hook; each message recorded
as a Communication, sent once, retried when the receiver is down, refused ones recorded as
not-done, and a send interrupted mid-DATA never repeated."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from fhirhub.channels.factory import build_channels
from fhirhub.channels.message import EMAIL, REST_HOOK, SMS, Message
from fhirhub.channels.service import Channels
from fhirhub.hub import Hub
from fhirhub.storage.outbound import SENDING, OutboundStore
from fhirhub.storage.store import utc_now_ms
from fhirhub.timers.model import GiveUp, Retry
from tests.smtp_support import MailServer
from tests.test_notifications_support import Receiver

ADDRESS = "pat@example.org"


def channels(hub: Hub, **settings: Any) -> Channels:
    configured = hub.settings.with_overrides(
        notify_allowed_hosts="loopback", notify_timeout_ms=2000, **settings
    )

    def record(resource: dict[str, Any]) -> None:
        hub.resources.update("Communication", resource["id"], resource)

    def exists(communication_id: str) -> bool:
        return hub.store.current("Communication", communication_id) is not None

    return build_channels(configured, OutboundStore(hub.db), record, exists)


def message(key: str = "reminder:Appointment/a1:PT24H", **extra: Any) -> Message:
    values: dict[str, Any] = {
        "key": key,
        "channel": EMAIL,
        "to": ADDRESS,
        "subject": "Appointment reminder",
        "text": "You have an appointment on Tuesday 12 March at 09:00.",
        "recipient": "Patient/p1",
        "about": ("Appointment/a1",),
        "category": "reminder",
    }
    values.update(extra)
    return Message(**values)


def recorded(hub: Hub, sent: Message) -> dict[str, Any]:
    stored = hub.resources.read("Communication", sent.communication_id).resource
    assert stored is not None
    return stored


def test_email_is_sent_once_and_recorded(hub: Hub, mail: MailServer) -> None:
    outbound = channels(hub, smtp_url=mail.url, smtp_from="clinic@example.org")
    sent = message()
    assert outbound.send(sent) == "sent by email"
    assert outbound.send(sent) == "already sent"  # a retry after a crash: nothing new
    [received] = mail.to(ADDRESS)
    assert received.sender == "clinic@example.org"
    assert received.mail["Subject"] == "Appointment reminder"
    assert received.mail["Message-ID"] == f"<{sent.communication_id}@fhirhub>"
    assert "09:00" in received.text
    record = recorded(hub, sent)
    assert record["status"] == "completed" and record["sent"]
    assert record["about"] == [{"reference": "Appointment/a1"}]
    assert record["recipient"] == [{"reference": "Patient/p1"}]
    assert record["medium"][0]["coding"][0]["code"] == "EMAILWRIT"
    assert record["category"][0]["coding"][0]["code"] == "reminder"
    assert record["meta"]["versionId"] == "1"  # recorded once


def test_starttls_with_login(hub: Hub) -> None:
    server = MailServer(tls=True, login=True).start()
    try:
        outbound = channels(hub, smtp_url=server.url, smtp_from="clinic@example.org")
        outbound.send(message())
        assert len(server.to(ADDRESS)) == 1
        wrong = server.url.replace(":s3cret@", ":wrong@")
        refused = channels(hub, smtp_url=wrong, smtp_from="clinic@example.org")
        with pytest.raises(GiveUp, match="login refused"):
            refused.send(message("reminder:other"))
        assert recorded(hub, message("reminder:other"))["status"] == "not-done"
    finally:
        server.stop()


def test_refused_recipient_is_recorded_not_done(hub: Hub, mail: MailServer) -> None:
    mail.reject.add("gone@example.org")
    outbound = channels(hub, smtp_url=mail.url)
    sent = message(to="gone@example.org")
    with pytest.raises(GiveUp, match="550"):
        outbound.send(sent)
    record = recorded(hub, sent)
    assert record["status"] == "not-done" and "550" in record["statusReason"]["text"]


def test_server_down_is_retried_then_sent_once(hub: Hub, mail: MailServer) -> None:
    outbound = channels(hub, smtp_url=mail.url)
    sent = message()
    mail.stop()
    with pytest.raises(Retry, match="SMTP"):
        outbound.send(sent)
    with pytest.raises(Retry):
        outbound.send(sent)
    assert hub.db["resources"].count_documents({"t": "Communication"}) == 0
    mail.start()
    outbound.send(sent)
    assert len(mail.to(ADDRESS)) == 1
    assert recorded(hub, sent)["status"] == "completed"


def test_interrupted_email_is_not_sent_again(hub: Hub, mail: MailServer) -> None:
    outbound = channels(hub, smtp_url=mail.url)
    sent = message()
    # The previous attempt marked the hand-over and died while the server took the message.
    OutboundStore(hub.db).put(sent.key, EMAIL, SENDING, utc_now_ms())
    assert "not resent" in outbound.send(sent)
    assert mail.messages == []
    record = recorded(hub, sent)
    assert record["status"] == "unknown" and "not sent again" in record["statusReason"]["text"]
    outbound.not_sent(sent, "gave up")  # the job ending later does not overwrite it
    assert recorded(hub, sent)["status"] == "unknown"


def test_sms_gateway(hub: Hub, receiver: Receiver) -> None:
    url = f"http://sender:tok%40en@127.0.0.1:{receiver.port}/sms"
    outbound = channels(hub, sms_url=url, sms_from="+15550100")
    sent = message(channel=SMS, to="+15550123")
    receiver.status = 503
    with pytest.raises(Retry, match="503"):
        outbound.send(sent)
    # An attempt that died after posting: the gateway de-duplicates, so it is resent.
    OutboundStore(hub.db).put(sent.key, SMS, SENDING, utc_now_ms())
    receiver.status = 200
    outbound.send(sent)
    [request] = receiver.requests
    assert request.path == "/sms"
    assert request.json() == {
        "to": "+15550123",
        "from": "+15550100",
        "body": sent.text,
        "reference": sent.idempotency_key,
    }
    assert request.headers["idempotency-key"] == sent.idempotency_key
    credentials = base64.b64encode(b"sender:tok@en").decode()
    assert request.headers["authorization"] == f"Basic {credentials}"
    assert recorded(hub, sent)["medium"][0]["text"] == "SMS"
    receiver.status = 400
    refused = message("sms:refused", channel=SMS, to="+1")
    with pytest.raises(GiveUp, match="400"):
        outbound.send(refused)
    assert recorded(hub, refused)["status"] == "not-done"


def test_rest_hook_posts_the_communication(hub: Hub, receiver: Receiver) -> None:
    outbound = channels(hub)
    sent = message("hook:1", channel=REST_HOOK, to=receiver.url)
    outbound.send(sent)
    [request] = receiver.requests
    assert request.headers["x-fhirhub-event-id"] == sent.idempotency_key
    body = request.json()
    assert body["resourceType"] == "Communication" and body["id"] == sent.communication_id


def test_missing_channel_and_giving_up(hub: Hub) -> None:
    outbound = channels(hub)  # no SMTP configured
    sent = message()
    with pytest.raises(GiveUp, match="no email channel"):
        outbound.send(sent)
    later = message("reminder:later")
    outbound.not_sent(later, "appointment already started")
    record = recorded(hub, later)
    assert record["status"] == "not-done"
    assert record["statusReason"]["text"] == "appointment already started"
