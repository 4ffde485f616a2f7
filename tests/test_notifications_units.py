"""Pure parts of notifications (no database): address policy, sender pinning, payloads,
subscriber conventions, backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fhirhub.config import Settings
from fhirhub.fhir.errors import ConfigurationError
from fhirhub.subscriptions.address_policy import AddressNotAllowed, AddressPolicy
from fhirhub.subscriptions.events import ChangeEvent
from fhirhub.subscriptions.model import endpoint_subscriber, subscription_subscriber
from fhirhub.subscriptions.payloads import build_notification, care_team_bundle, sign
from fhirhub.worker.retries import Next, RetryPolicy, decide
from fhirhub.worker.sender import Sender, SendResult
from tests.test_notifications_support import SECRET, Receiver, endpoint

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("spec", "url", "allowed"),
    [
        ("loopback", "http://127.0.0.1:8000/x", True),
        ("public", "http://127.0.0.1:8000/x", False),
        ("public", "http://[::ffff:127.0.0.1]/x", False),
        ("loopback,public", "http://169.254.169.254/latest", False),  # cloud metadata
        ("loopback,public", "http://0.0.0.0:8080/", False),
        ("private", "http://10.1.2.3/", True),
        ("10.1.0.0/16", "http://10.1.2.3/", True),
        ("10.1.0.0/16", "http://10.2.0.1/", False),
        ("public", "https://8.8.8.8/hook", True),
        ("public", "ftp://8.8.8.8/", False),
        ("public", "http://user:pw@8.8.8.8/", False),
    ],
)
def test_address_policy(spec: str, url: str, allowed: bool) -> None:
    policy = AddressPolicy.parse(spec)
    if allowed:
        policy.check_url(url)
    else:
        with pytest.raises(AddressNotAllowed):
            policy.check_url(url)


def test_address_policy_names_and_defaults() -> None:
    policy = AddressPolicy.parse("hooks.example.org,*.partner.example")
    policy.check_addresses("hooks.example.org", ["10.0.0.5"])  # listed by name
    policy.check_addresses("a.partner.example", ["10.0.0.5"])
    with pytest.raises(AddressNotAllowed):
        policy.check_addresses("other.example", ["93.184.216.34"])
    dev = AddressPolicy.from_settings(Settings())
    prod = AddressPolicy.from_settings(Settings(mongodb_uri="mongodb://db/"))
    assert dev.classes == {"loopback", "public"} and prod.classes == {"public"}
    with pytest.raises(ConfigurationError):
        AddressPolicy.parse("10.0.0.0/33")


def test_sender_checks_resolved_names_and_pins_the_address(receiver: Receiver) -> None:
    url = f"http://localhost:{receiver.port}/notify"
    blocked = Sender(AddressPolicy.parse("public"), 2).send(url, b"{}", {})
    assert not blocked.ok and blocked.permanent and "not allow" in blocked.error
    sender = Sender(AddressPolicy.parse("loopback"), 2)
    try:
        result = sender.send(url, b"{}", {"X-Test": "1"})
    finally:
        sender.close()
    assert result.ok and result.status == 200
    assert receiver.requests[0].headers["host"] == f"localhost:{receiver.port}"


def test_sender_reports_refused_connections_as_retryable() -> None:
    result = Sender(AddressPolicy.parse("loopback"), 1).send("http://127.0.0.1:9/x", b"", {})
    assert not result.ok and not result.permanent


def event(deleted: bool = False, version: int = 1) -> ChangeEvent:
    resource = {"resourceType": "Observation", "id": "o1", "status": "final"}
    doc = {
        "_id": f"Observation/o1/{version}",
        "t": "Observation",
        "rid": "o1",
        "v": version,
        "ts": NOW,
        "m": "DELETE" if deleted else "PUT",
        "del": deleted,
        "res": None if deleted else resource,
    }
    return ChangeEvent.from_history(doc, resource if deleted else None)


def test_care_team_payload_is_a_signed_history_bundle() -> None:
    subscriber = endpoint_subscriber({**endpoint("http://127.0.0.1/x"), "id": "e1"})
    bundle = care_team_bundle(
        event(version=2), "http://h/fhir", ["Patient/p"], ["CareTeam/t"], True, NOW
    )
    note = build_notification(subscriber, event(version=2), 1, bundle)
    assert note.headers["X-Signature"] == sign(SECRET, note.body)
    assert note.headers["X-Fhirhub-Event"] == "update"
    assert note.headers["X-Fhirhub-Event-Id"] == event(version=2).event_id  # stable per version
    entry = bundle["entry"][0]
    assert entry["request"] == {"method": "PUT", "url": "Observation/o1"}
    assert entry["response"]["location"] == "Observation/o1/_history/2"


def test_deletes_carry_no_resource() -> None:
    subscriber = subscription_subscriber(
        {
            "resourceType": "Subscription",
            "id": "s1",
            "status": "active",
            "channel": {
                "type": "rest-hook",
                "endpoint": "http://x",
                "payload": "application/fhir+json",
            },
        },
        NOW,
    )
    note = build_notification(subscriber, event(deleted=True, version=3), 1, None)
    assert note.body == b"" and note.headers["X-Fhirhub-Event"] == "delete"
    assert "X-Signature" not in note.headers  # this subscriber has no secret


def test_endpoint_conventions() -> None:
    types = {"system": "http://hl7.org/fhir/resource-types", "code": "Observation"}
    filtered = endpoint_subscriber(
        {**endpoint("http://x"), "id": "e", "payloadType": [{"coding": [types]}]}
    )
    assert filtered.accepts("Observation") and not filtered.accepts("Condition")
    off = endpoint_subscriber({**endpoint("http://x"), "id": "e", "status": "off"})
    assert not off.active and "off" in off.reason
    other = endpoint_subscriber(
        {**endpoint("mailto:a@b"), "id": "e", "connectionType": {"code": "direct-project"}}
    )
    assert not other.active


def test_subscription_end_makes_it_inactive() -> None:
    resource = {
        "resourceType": "Subscription",
        "id": "s",
        "status": "active",
        "end": "2024-05-01T11:00:00Z",
        "channel": {"type": "rest-hook", "endpoint": "http://x"},
    }
    assert not subscription_subscriber(resource, NOW).active
    assert subscription_subscriber(resource, NOW - timedelta(hours=2)).active


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    policy = RetryPolicy(10, timedelta(seconds=1), timedelta(seconds=60), timedelta(hours=1))
    delays = [policy.delay(n).total_seconds() for n in range(1, 10)]
    assert 0.8 <= delays[0] <= 1.2 and 3.2 <= delays[2] <= 4.8
    assert all(d <= 72 for d in delays) and delays[-1] >= 48


POLICY = RetryPolicy(3, timedelta(seconds=1), timedelta(minutes=10), timedelta(hours=72))


@pytest.mark.parametrize(
    ("result", "kind"),
    [
        (SendResult(False, error="ConnectError: refused"), "unavailable"),
        (SendResult(False, error="no response within 5 s"), "unavailable"),
        (SendResult(False, 503, "HTTP 503"), "unavailable"),
        (SendResult(False, 429, "HTTP 429"), "unavailable"),
        (SendResult(False, 500, "HTTP 500"), "refused"),
        (SendResult(False, 422, "HTTP 422"), "refused"),
    ],
)
def test_a_receiver_down_is_told_from_a_refused_event(result: SendResult, kind: str) -> None:
    decision = decide(POLICY, {"n": 2, "nr": 0}, result, NOW)
    assert decision.fields["kind"] == kind and decision.next is Next.RETRY
    assert decision.fields["nr"] == (1 if kind == "refused" else 0)
    assert decision.fields["first"] == NOW and decision.fields["next"] > NOW


def test_an_hour_down_is_retried_and_only_the_horizon_gives_up() -> None:
    down = SendResult(False, error="ConnectError: refused")
    hour = {"n": 40, "nr": 0, "first": NOW - timedelta(hours=1)}
    decision = decide(POLICY, hour, down, NOW)
    assert decision.next is Next.RETRY and decision.fields["next"] <= NOW + timedelta(minutes=12)
    gone = {**hour, "first": NOW - timedelta(hours=72)}
    assert decide(POLICY, gone, down, NOW).next is Next.DEAD_SUBSCRIBER


def test_refusals_make_a_suspect_and_at_the_horizon_a_dead_event() -> None:
    refused = SendResult(False, 500, "HTTP 500")
    assert decide(POLICY, {"n": 1, "nr": 1}, refused, NOW).next is Next.RETRY
    assert decide(POLICY, {"n": 5, "nr": 2}, refused, NOW).next is Next.SUSPECT
    old = {"n": 9, "nr": 9, "first": NOW - timedelta(hours=80)}
    assert decide(POLICY, old, refused, NOW).next is Next.DEAD_EVENT
    forbidden = SendResult(False, error="address not allowed", permanent=True)
    assert decide(POLICY, {}, forbidden, NOW).next is Next.DEAD_SUBSCRIBER
    assert decide(POLICY, {"n": 3}, SendResult(True, 200), NOW).next is Next.DELIVERED


def test_a_receivers_retry_after_lengthens_the_wait_up_to_the_cap() -> None:
    busy = SendResult(False, 503, "HTTP 503", retry_after_s=120)
    assert decide(POLICY, {"n": 0}, busy, NOW).fields["next"] >= NOW + timedelta(seconds=120)
    far = SendResult(False, 503, "HTTP 503", retry_after_s=86_400)
    assert decide(POLICY, {"n": 0}, far, NOW).fields["next"] <= NOW + timedelta(minutes=10)


def test_sender_reads_retry_after(receiver: Receiver) -> None:
    receiver.status = 429
    receiver.reply_headers["Retry-After"] = "7"
    sender = Sender(AddressPolicy.parse("loopback"), 2.0)
    try:
        result = sender.send(receiver.url, b"{}", {})
        receiver.reply_headers["Retry-After"] = "Wed, 21 Oct 2015 07:28:00 GMT"
        dated = sender.send(receiver.url, b"{}", {})
    finally:
        sender.close()
    assert result.status == 429 and result.retry_after_s == 7
    assert dated.retry_after_s is None  # the date form: the backoff applies
