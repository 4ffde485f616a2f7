"""Pure messaging, routing and document rules (no database): recipients, attachments and
their SHA-1 hash, read status, threads, notice contacts, what a note routes back to, the
references a document Bundle resolves, amendment targets."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

from fhirhub.coordination.documents.amendments import targets
from fhirhub.coordination.documents.bundle import document, local_reference, wanted
from fhirhub.coordination.messaging import rules
from fhirhub.coordination.referrals.reactions import is_final, referral_links, routed_task

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
BASE = "http://example.org/fhir"


def message(*recipients: str, subject: str | None = "Patient/p") -> dict[str, object]:
    found: dict[str, object] = {
        "resourceType": "Communication",
        "id": "m1",
        "sender": {"reference": "Practitioner/lead"},
        "recipient": [{"reference": r} for r in recipients],
    }
    if subject:
        found["subject"] = {"reference": subject}
    return found


def test_recipient_rules() -> None:
    assert rules.recipient_problems(message("CareTeam/t", "Patient/p")) == []
    assert rules.recipient_problems(message("Patient/q")) == [
        "a message to Patient/q has that patient as its subject"
    ]
    assert "cannot receive" in rules.recipient_problems(message("Device/d"))[0]
    assert "cannot receive" in rules.recipient_problems(message("http://x.org/Practitioner/a"))[0]
    assert rules.recipient_problems(message()) == ["a message needs at least one recipient"]
    team_sender = {**message("Patient/p"), "sender": {"reference": "CareTeam/t"}}
    assert rules.recipient_problems(team_sender) == ["CareTeam/t cannot send messages"]


def test_attachment_checks() -> None:
    data = b"%PDF-1.4"
    right = base64.b64encode(hashlib.sha1(data).digest()).decode()
    assert rules.sha1(data) == right
    assert rules.content_problems("application/pdf", data, right, "a") == []
    assert rules.content_problems("application/pdf; charset=x", data, None, "a") == []
    assert "not allowed" in rules.content_problems("text/html", data, None, "a")[0]
    assert "over the limit of 4" in rules.content_problems("text/plain", data, None, "a", 4)[0]
    assert "hash does not match" in rules.content_problems("text/plain", data, "AAAA", "a")[0]
    assert rules.decoded("not base64!") is None
    assert rules.decoded(base64.b64encode(data).decode()) == data


def test_read_status_threads_and_contacts() -> None:
    first = rules.marked_read(message("CareTeam/t"), "Practitioner/nurse", NOW)
    assert first is not None and first["received"] == "2026-03-01T09:30:00+00:00"
    assert rules.read_status(first) == {"Practitioner/nurse": "2026-03-01T09:30:00+00:00"}
    assert rules.marked_read(first, "Practitioner/nurse", NOW) is None
    assert rules.thread_of(message("Patient/p")) == "Communication/m1"
    reply = {**message("Patient/p"), "inResponseTo": [{"reference": "Communication/m0"}]}
    assert rules.thread_of(reply) == "Communication/m0"
    person = {
        "telecom": [
            {"system": "phone", "value": "+1555", "use": "home"},
            {"system": "phone", "value": "+1666", "use": "mobile"},
            {"system": "email", "value": "old@x.org", "period": {"end": "2020-01-01"}},
        ]
    }
    assert rules.contact(person, {"email", "sms"}) == ("sms", "+1666")
    assert rules.contact(person, {"email"}) is None
    record = {"identifier": [{"system": rules.OUTBOUND_RECORD, "value": "k"}]}
    assert rules.is_channel_record(record) and not rules.is_channel_record(message("Patient/p"))
    assert "Potassium" not in rules.NOTICE_TEXT


def test_routing_back_to_the_referral() -> None:
    note = {
        "resourceType": "DocumentReference",
        "status": "current",
        "docStatus": "final",
        "context": {"related": [{"reference": "ServiceRequest/sr1"}]},
    }
    assert referral_links(note) == ["ServiceRequest/sr1"] and is_final(note)
    order = {"resourceType": "MedicationRequest", "basedOn": [{"reference": "ServiceRequest/sr1"}]}
    assert referral_links(order) == ["ServiceRequest/sr1"] and not is_final(order)
    task = {"resourceType": "Task", "id": "t1", "status": "in-progress"}
    done = routed_task(task, "DocumentReference/n1", True, NOW)
    assert done is not None and done["status"] == "completed"
    assert done["output"] == [
        {"type": {"text": "consult note"}, "valueReference": {"reference": "DocumentReference/n1"}}
    ]
    assert routed_task(done, "DocumentReference/n1", True, NOW) is None  # repeated event


def test_document_references_and_amendments() -> None:
    composition = {
        "resourceType": "Composition",
        "id": "c1",
        "subject": {"reference": "Patient/p"},
        "author": [{"reference": f"{BASE}/Practitioner/a"}, {"reference": "#contained"}],
        "section": [
            {"entry": [{"reference": "Condition/x/_history/2"}, {"reference": "Patient/p"}]},
            {"section": [{"entry": [{"reference": "https://other.org/fhir/Observation/o"}]}]},
        ],
        "relatesTo": [{"code": "replaces", "targetReference": {"reference": "Composition/c0"}}],
    }
    assert wanted(composition, BASE) == [
        "Patient/p",
        "Practitioner/a",
        "Condition/x",
        "Composition/c0",
    ]
    assert local_reference("urn:uuid:1", BASE) is None
    bundle = document(composition, [{"resourceType": "Patient", "id": "p"}], BASE, NOW)
    assert bundle["type"] == "document" and bundle["entry"][0]["resource"] is composition
    assert bundle["entry"][1]["fullUrl"] == f"{BASE}/Patient/p"
    assert targets(composition) == [("replaces", "Composition/c0")]
