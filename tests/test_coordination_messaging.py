"""Secure messaging through the REST API with a token per role: threads, CareTeam
recipients, who reads what, read status and inbox counts, attachments, and the bad input
the issue lists (refused with a 4xx OperationOutcome, nothing written)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from flask.testing import FlaskClient

from fhirhub.config import Settings
from fhirhub.hub import Hub
from tests.coordination_support import put, who, world
from tests.test_auth_enforcement import Caller


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_overrides(attachment_max_bytes=2048)


@pytest.fixture
def hub_world(auth_hub: Hub) -> Hub:
    world(auth_hub)
    return auth_hub


def message(sender: str, *recipients: str, subject: str | None = "Patient/p", **extra: Any) -> Any:
    found: dict[str, Any] = {
        "resourceType": "Communication",
        "status": "completed",
        "sender": {"reference": sender},
        "recipient": [{"reference": r} for r in recipients],
        "payload": [{"contentString": "Potassium 6.1 today: please review spironolactone"}],
        **extra,
    }
    if subject:
        found["subject"] = {"reference": subject}
    if not recipients:
        del found["recipient"]
    return found


def created(response: Any) -> str:
    assert response.status_code == 201, response.get_data(as_text=True)
    return str(response.get_json()["id"])


def mark(caller: Caller, message_id: str) -> Any:
    path = f"/fhir/Communication/{message_id}/$mark-read"
    return caller.send("POST", path, {"resourceType": "Parameters"})


def inbox(caller: Caller, **params: str) -> dict[str, Any]:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    response = caller.get(f"/fhir/Communication/$inbox{'?' + query if query else ''}")
    assert response.status_code == 200, response.get_data(as_text=True)
    values = {p["name"]: p.get("valueInteger") for p in response.get_json()["parameter"]}
    threads = [p for p in response.get_json()["parameter"] if p["name"] == "thread"]
    return {"total": values["total"], "unread": values["unread"], "threads": len(threads)}


def test_threads_recipients_read_status_and_who_reads(
    auth_client: FlaskClient, hub_world: Hub
) -> None:
    lead, nurse = who(auth_client, hub_world, "lead"), who(auth_client, hub_world, "nurse")
    spec, outsider = who(auth_client, hub_world, "spec"), who(auth_client, hub_world, "outsider")
    patient = who(auth_client, hub_world, "patient")
    # the team discusses patient p; a CareTeam recipient reaches its members
    first = created(
        lead.send("POST", "/fhir/Communication", message("Practitioner/lead", "CareTeam/team-p"))
    )
    assert inbox(nurse) == {"total": 1, "unread": 1, "threads": 1}
    marked = mark(nurse, first)
    assert marked.status_code == 200, marked.get_data(as_text=True)
    assert marked.get_json()["received"]
    assert inbox(nurse) == {"total": 1, "unread": 0, "threads": 1}
    again = mark(nurse, first)
    assert again.get_json()["meta"]["versionId"] == marked.get_json()["meta"]["versionId"]
    reply = message(
        "Practitioner/nurse",
        "Practitioner/lead",
        inResponseTo=[{"reference": f"Communication/{first}"}],
    )
    created(nurse.send("POST", "/fhir/Communication", reply))
    assert inbox(lead) == {"total": 1, "unread": 1, "threads": 1}
    # the patient writes to the team and reads their own thread, not the team's discussion
    to_team = message("Patient/p", "CareTeam/team-p", payload=[{"contentString": "Can I call?"}])
    own = created(patient.send("POST", "/fhir/Communication", to_team))
    assert patient.ids("/fhir/Communication?subject=Patient/p") == [f"Communication/{own}"]
    assert patient.get(f"/fhir/Communication/{first}").status_code == 404
    assert mark(patient, first).status_code == 404
    assert len(lead.ids("/fhir/Communication?subject=Patient/p")) == 3  # the care team reads all
    # outsiders read nothing; they cannot mark read either
    assert outsider.get(f"/fhir/Communication/{first}").status_code == 404
    assert outsider.ids("/fhir/Communication?subject=Patient/p") == []
    assert mark(outsider, first).status_code == 404
    # a message about no patient, practitioner to practitioner: sender and recipient only
    colleague = created(
        lead.send(
            "POST",
            "/fhir/Communication",
            message("Practitioner/lead", "Practitioner/spec", subject=None),
        )
    )
    assert spec.ids("/fhir/Communication?recipient=Practitioner/spec") == [
        f"Communication/{colleague}"
    ]
    assert inbox(spec) == {"total": 1, "unread": 1, "threads": 1}
    assert mark(spec, colleague).status_code == 200
    assert mark(lead, colleague).status_code == 403
    assert outsider.get(f"/fhir/Communication/{colleague}").status_code == 404
    assert nurse.get(f"/fhir/Communication/{colleague}").status_code == 404
    # inbox of someone else: only unrestricted tokens
    assert nurse.get("/fhir/Communication/$inbox?recipient=Practitioner/lead").status_code == 403
    root = who(auth_client, hub_world, "root")
    assert root.get("/fhir/Communication/$inbox?recipient=Practitioner/nurse").status_code == 200


def test_bad_messages_are_refused_and_nothing_is_written(
    auth_client: FlaskClient, hub_world: Hub
) -> None:
    lead, nurse = who(auth_client, hub_world, "lead"), who(auth_client, hub_world, "nurse")
    patient = who(auth_client, hub_world, "patient")
    cases: list[tuple[Caller, dict[str, Any], int, str]] = [
        (nurse, message("Practitioner/lead", "CareTeam/team-p"), 403, "sender must be"),
        (patient, message("Patient/q", "CareTeam/team-p", subject="Patient/q"), 403, ""),
        (lead, message("Practitioner/lead", "Practitioner/ghost"), 422, "does not exist"),
        (lead, message("Practitioner/lead", "Practitioner/spec"), 422, "may not receive"),
        (lead, message("Practitioner/lead", "Patient/q"), 422, "has that patient as its subject"),
        (lead, message("Practitioner/lead", "Device/x"), 422, "cannot receive"),
        (lead, message("Practitioner/lead"), 422, "at least one recipient"),
        (
            lead,
            message(
                "Practitioner/lead",
                "CareTeam/team-p",
                inResponseTo=[{"reference": "Communication/nope"}],
            ),
            422,
            "does not exist",
        ),
    ]
    data = b"%PDF-1.4 echo report"
    good_hash = base64.b64encode(hashlib.sha1(data).digest()).decode()

    def attached(**attachment: Any) -> dict[str, Any]:
        return message(
            "Practitioner/lead", "CareTeam/team-p", payload=[{"contentAttachment": attachment}]
        )

    encoded = base64.b64encode(data).decode()
    cases += [
        (lead, attached(contentType="application/x-msdownload", data=encoded), 422, "not allowed"),
        (
            lead,
            attached(contentType="application/pdf", data=base64.b64encode(b"x" * 4096).decode()),
            422,
            "over the limit",
        ),
        (
            lead,
            attached(
                contentType="application/pdf",
                data=encoded,
                hash=base64.b64encode(b"0" * 20).decode(),
            ),
            422,
            "hash does not match",
        ),
        (lead, attached(contentType="application/pdf", url="Binary/nope"), 422, "not a Binary"),
        (
            lead,
            {
                **message("Practitioner/lead", "CareTeam/team-p"),
                "extension": [
                    {
                        "url": "https://fhirhub.example/fhir/StructureDefinition/communication-read-status",
                        "extension": [
                            {
                                "url": "recipient",
                                "valueReference": {"reference": "Practitioner/nurse"},
                            },
                            {"url": "read", "valueDateTime": "2026-01-01"},
                        ],
                    }
                ],
            },
            403,
            "mark-read",
        ),
    ]
    for caller_, body, status, text in cases:
        response = caller_.send("POST", "/fhir/Communication", body)
        outcome = response.get_json()
        assert response.status_code == status, (body, outcome["issue"][0]["diagnostics"])
        outcome = response.get_json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert text in outcome["issue"][0]["diagnostics"], outcome
    assert hub_world.search.find_resources("Communication", "_count=10") == []
    # Binary (written by a system/admin client: confined tokens write no shared types):
    # allow-list and size; a stored Binary with the right hash is a fine attachment
    root = who(auth_client, hub_world, "root")
    blocked = {"resourceType": "Binary", "contentType": "application/x-sh", "data": encoded}
    assert root.send("POST", "/fhir/Binary", blocked).status_code == 422
    binary = created(
        root.send(
            "POST",
            "/fhir/Binary",
            {"resourceType": "Binary", "contentType": "application/pdf", "data": encoded},
        )
    )
    ok = attached(contentType="application/pdf", url=f"Binary/{binary}", hash=good_hash)
    first = created(lead.send("POST", "/fhir/Communication", ok))
    wrong = attached(
        contentType="application/pdf",
        url=f"Binary/{binary}",
        hash=base64.b64encode(b"1" * 20).decode(),
    )
    assert lead.send("POST", "/fhir/Communication", wrong).status_code == 422
    # only the sender edits a message
    current = lead.get(f"/fhir/Communication/{first}").get_json()
    changed = {**current, "payload": [{"contentString": "edited by someone else"}]}
    assert nurse.send("PUT", f"/fhir/Communication/{first}", changed).status_code == 403
    assert hub_world.resources.read("Communication", first).version == 1


def test_related_person_and_organization_recipients(
    auth_client: FlaskClient, hub_world: Hub
) -> None:
    put(
        hub_world,
        {"resourceType": "RelatedPerson", "id": "mum", "patient": {"reference": "Patient/p"}},
    )
    put(
        hub_world,
        {"resourceType": "RelatedPerson", "id": "other-mum", "patient": {"reference": "Patient/q"}},
    )
    put(hub_world, {"resourceType": "Organization", "id": "clinic", "name": "Clinic"})
    lead = who(auth_client, hub_world, "lead")
    assert (
        lead.send(
            "POST", "/fhir/Communication", message("Practitioner/lead", "RelatedPerson/mum")
        ).status_code
        == 201
    )
    assert (
        lead.send(
            "POST", "/fhir/Communication", message("Practitioner/lead", "RelatedPerson/other-mum")
        ).status_code
        == 422
    )
    assert (
        lead.send(
            "POST", "/fhir/Communication", message("Practitioner/lead", "Organization/clinic")
        ).status_code
        == 422
    )
    current = hub_world.resources.read("Patient", "p").resource
    assert current is not None
    put(hub_world, {**current, "managingOrganization": {"reference": "Organization/clinic"}})
    assert (
        lead.send(
            "POST", "/fhir/Communication", message("Practitioner/lead", "Organization/clinic")
        ).status_code
        == 201
    )
