"""Scheduling through the FHIR API on the real database: $find in the actors' time zone,
$hold (expiring), $book, no double booking under 16-way concurrency, cancel, reschedule,
no-show, and bad input answered 4xx with nothing written and no claim left behind."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from fhirhub.app import create_app
from fhirhub.config import Settings
from fhirhub.hub import Hub
from fhirhub.storage.slot_claims import SlotClaims
from tests.auth_helpers import register_app
from tests.helpers import FHIR_JSON, assert_outcome, body, create
from tests.scheduling_support import (
    SPECIALTY,
    appointment,
    at,
    booked,
    clinic,
    params,
    post,
)
from tests.test_auth_enforcement import caller


def find(client: FlaskClient, query: str) -> list[dict[str, Any]]:
    response = client.get(f"/fhir/Appointment/$find?{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return [e["resource"] for e in body(response).get("entry", [])]


def claims(hub: Hub) -> int:
    return hub.db["slot_claims"].count_documents({})


def appointments(hub: Hub) -> int:
    return hub.db["resources"].count_documents({"t": "Appointment"})


def test_find_follows_weekly_hours_in_local_time(client: FlaskClient) -> None:
    c = clinic(client)
    monday = c.monday
    window = f"start={at(monday, 0)}&end={at(monday + timedelta(days=3), 0)}"
    found = find(client, f"{window}&practitioner={c.practitioner}&duration=60&_count=100")
    starts = [a["start"] for a in found]
    assert starts == sorted(starts)
    assert starts[0] == at(monday, 9)  # 09:00 New York
    assert at(monday, 12) not in starts and at(monday, 11, 30) not in starts  # lunch
    assert (
        at(monday, 13) in starts and at(monday, 16) in starts and at(monday, 16, 15) not in starts
    )
    holiday = monday + timedelta(days=2)
    assert not [s for s in starts if s.startswith(holiday.isoformat())]
    first = found[0]
    assert first["status"] == "proposed" and first["minutesDuration"] == 60
    refs = [p["actor"]["reference"] for p in first["participant"]]
    assert c.practitioner in refs and c.location in refs and c.role in refs
    # By specialty, over a date (a whole day): 30-minute visits on the quarter-hour grid,
    # 11 before lunch (09:00-11:30) and 15 after (13:00-16:30).
    day = f"start={monday.isoformat()}&end={monday.isoformat()}"
    assert len(find(client, f"{day}&specialty={SPECIALTY}&_count=100")) == 26
    assert find(client, f"{day}&specialty=http://nucc.org/provider-taxonomy|000&_count=5") == []


def test_hold_book_cancel_and_reschedule(client: FlaskClient, hub: Hub) -> None:
    c = clinic(client)
    nine, half = at(c.monday, 9), at(c.monday, 9, 30)
    proposal = appointment(c, nine, half)
    held = booked(post(client, "/fhir/Appointment/$hold", params(proposal)))
    assert held["status"] == "pending"
    window = f"start={nine}&end={at(c.monday, 10)}&practitioner={c.practitioner}"
    assert [a["start"] for a in find(client, window)] == [half]  # the hold blocks 09:00
    # Someone else cannot take the held time.
    other = appointment(c, nine, half, patient=1)
    assert_outcome(post(client, "/fhir/Appointment/$book", params(other)), 409, "not available")
    # A plain POST skips the availability check, not the claims.
    plain = {**other, "status": "booked"}
    response = client.post("/fhir/Appointment", json=plain, headers=FHIR_JSON)
    assert_outcome(response, 409, "is already booked between")
    done = booked(
        post(client, "/fhir/Appointment/$book", params(reference=f"Appointment/{held['id']}"))
    )
    assert done["status"] == "booked" and done["id"] == held["id"]
    # Reschedule: a new appointment replaces it; the original is cancelled.
    moved = {**done, "start": at(c.monday, 10), "end": at(c.monday, 10, 30)}
    response = post(client, "/fhir/Appointment/$book", params(moved))
    new = booked(response)
    assert response.status_code == 201 and new["id"] != done["id"]
    [link] = [e for e in new["extension"] if e["url"].endswith("Appointment.replaces")]
    assert link["valueReference"] == {"reference": f"Appointment/{done['id']}"}
    original = body(client.get(f"/fhir/Appointment/{done['id']}"))
    assert original["status"] == "cancelled"
    assert original["cancelationReason"]["text"] == "Rescheduled"
    # The old time is free again, the new one taken.
    assert nine in [a["start"] for a in find(client, window)]
    # Cancel through $book.
    cancelled = {**new, "status": "cancelled", "cancelationReason": {"text": "Feeling better"}}
    result = booked(post(client, "/fhir/Appointment/$book", params(cancelled)))
    assert result["status"] == "cancelled"
    assert claims(hub) == 0


def test_sixteen_clients_booking_the_same_time(app: Flask, client: FlaskClient, hub: Hub) -> None:
    c = clinic(client, patients=16)
    start, end = at(c.monday, 14), at(c.monday, 14, 30)
    barrier = threading.Barrier(16)
    results: list[tuple[int, dict[str, Any]]] = []
    lock = threading.Lock()

    def book(i: int) -> None:
        local = app.test_client()
        payload = params(appointment(c, start, end, patient=i))
        barrier.wait()
        if i % 2:  # half through $book, half as a plain POST of a booked Appointment
            response = post(local, "/fhir/Appointment/$book", payload)
        else:
            resource = appointment(c, start, end, patient=i, status="booked")
            response = local.post("/fhir/Appointment", json=resource, headers=FHIR_JSON)
        with lock:
            results.append((response.status_code, body(response)))

    threads = [threading.Thread(target=book, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(s for s, _ in results)
    assert statuses.count(201) == 1 and statuses.count(409) == 15, statuses
    for status, outcome in results:
        if status == 409:
            text = outcome["issue"][0]["diagnostics"]
            assert c.practitioner in text and "Patient/" not in text.split("between")[0].replace(
                c.practitioner, ""
            )
    assert appointments(hub) == 1
    booked_ones = [
        e["resource"] for e in body(client.get("/fhir/Appointment?status=booked"))["entry"]
    ]
    assert len(booked_ones) == 1


def test_a_writer_stops_claiming_at_its_first_conflict(
    client: FlaskClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A loser that went on claiming the next actor could take the winner's time there and
    both would fail: the 16-client test above once ended with sixteen 409s."""
    c = clinic(client, patients=2)
    start, end = at(c.monday, 15), at(c.monday, 15, 30)
    room_only = appointment(c, start, end, patient=1, status="booked")
    room_only["participant"] = [
        p for p in room_only["participant"] if p["actor"]["reference"] != c.practitioner
    ]
    assert client.post("/fhir/Appointment", json=room_only, headers=FHIR_JSON).status_code == 201
    tried: list[str] = []
    real_take = SlotClaims.take

    def take(self: SlotClaims, keys: list[str], owner: str, seat: int = 0) -> Any:
        tried.extend(keys)
        return real_take(self, keys, owner, seat)

    monkeypatch.setattr(SlotClaims, "take", take)
    resource = appointment(c, start, end, patient=0, status="booked")
    outcome = assert_outcome(
        client.post("/fhir/Appointment", json=resource, headers=FHIR_JSON), 409, c.location
    )
    assert tried and all(key.startswith(c.location) for key in tried), tried
    assert c.practitioner not in outcome["issue"][0]["diagnostics"]  # free: not named


def test_bad_input_is_4xx_and_leaves_nothing(client: FlaskClient, hub: Hub) -> None:
    c = clinic(client)
    nine = at(c.monday, 9)
    before = appointments(hub)
    monday = c.monday.isoformat()
    cases = [
        (f"start={at(c.monday, 10)}&end={nine}", 400, "end must be after start"),
        (f"start={monday}T09:00:00&end={monday}T10:00:00", 400, "not a valid dateTime"),
        (f"start={nine}&duration=0", 400, "positiveInt"),
        (f"start={nine}&duration=1441", 400, "at most 24 hours"),
        (f"start={nine}&practitioner=Practitioner/nobody", 422, "not known"),
        (f"start={nine}&practitioner=Patient/x", 400, "not a Practitioner"),
        (f"start={nine}&visit-type=CHECKUP", 400, "system|code"),
        (f"start={nine}&bogus=1", 400, "not a parameter"),
    ]
    for query, status, fragment in cases:
        assert_outcome(client.get(f"/fhir/Appointment/$find?{query}"), status, fragment)
    bad_books = [
        (params(appointment(c, at(c.monday, 7), at(c.monday, 7, 30))), 409, "not available"),
        (params(appointment(c, at(c.monday, 9, 30), nine)), 400, "after"),
        (params(appointment(c, nine, at(c.monday + timedelta(days=2), 9))), 400, "24 hours"),
        (params({**appointment(c, nine, at(c.monday, 9, 30)), "participant": []}), 400, ""),
        ({"resourceType": "Parameters", "parameter": [{"name": "appointment-resource"}]}, 400, ""),
        ({"resourceType": "Parameters"}, 400, "exactly one"),
        (params(reference="Appointment/nothing"), 404, ""),
    ]
    unknown = appointment(c, nine, at(c.monday, 9, 30))
    unknown["participant"][1]["actor"]["reference"] = "Practitioner/ghost"
    bad_books.append((params(unknown), 422, "not known"))
    for payload, status, fragment in bad_books:
        assert_outcome(post(client, "/fhir/Appointment/$book", payload), status, fragment)
    # A busy Slot cannot be booked.
    schedule = body(create(client, {"resourceType": "Schedule", "actor": [{"reference": c.role}]}))
    slot = body(
        create(
            client,
            {
                "resourceType": "Slot",
                "schedule": {"reference": f"Schedule/{schedule['id']}"},
                "status": "busy",
                "start": nine,
                "end": at(c.monday, 9, 30),
            },
        )
    )
    with_slot = appointment(c, nine, at(c.monday, 9, 30), status="booked")
    with_slot["slot"] = [{"reference": f"Slot/{slot['id']}"}]
    response = client.post("/fhir/Appointment", json=with_slot, headers=FHIR_JSON)
    assert_outcome(response, 409, "busy")
    # Noshow only after the start.
    ok = booked(
        post(
            client,
            "/fhir/Appointment/$book",
            params(appointment(c, at(c.monday, 10), at(c.monday, 10, 30))),
        )
    )
    early = {**ok, "status": "noshow"}
    response = client.put(f"/fhir/Appointment/{ok['id']}", json=early, headers=FHIR_JSON)
    assert_outcome(response, 422, "only after its start")
    assert appointments(hub) == before + 1
    assert claims(hub) == 6 * 3  # 5-minute buckets x (patient, practitioner, location)


def test_noshow_and_rates(client: FlaskClient, hub: Hub) -> None:
    c = clinic(client)
    past = datetime.now(UTC) - timedelta(days=3)
    made = []
    for hours in (0, 2, 4):
        start = (past + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
        end = (past + timedelta(hours=hours, minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
        made.append(body(create(client, appointment(c, start, end, status="booked"))))
    assert claims(hub) == 0  # past time claims nothing
    missed = {**made[0], "status": "noshow"}
    assert (
        client.put(f"/fhir/Appointment/{made[0]['id']}", json=missed, headers=FHIR_JSON).status_code
        == 200
    )
    fulfilled = {**made[1], "status": "fulfilled"}
    client.put(f"/fhir/Appointment/{made[1]['id']}", json=fulfilled, headers=FHIR_JSON)
    response = client.get(
        f"/fhir/Appointment/$noshow-rate?patient={c.patients[0]}&practitioner={c.practitioner}"
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    parts = {
        p["part"][0]["valueReference"]["reference"]: {q["name"]: q for q in p["part"]}
        for p in body(response)["parameter"]
    }
    patient = parts[c.patients[0]]
    assert patient["appointments"]["valueInteger"] == 3
    assert patient["noshow"]["valueInteger"] == 1
    assert patient["rate"]["valueDecimal"] == round(1 / 3, 4)
    assert parts[c.practitioner]["noshow"]["valueInteger"] == 1


def test_operations_are_listed(client: FlaskClient) -> None:
    statement = body(client.get("/fhir/metadata"))
    appointment_support = next(
        r for r in statement["rest"][0]["resource"] if r["type"] == "Appointment"
    )
    names = {o["name"] for o in appointment_support["operation"]}
    assert {"find", "hold", "book", "noshow-rate"} <= names
    definition = body(client.get("/fhir/OperationDefinition/appointment-find"))
    assert definition["base"].startswith("https://profiles.ihe.net/ITI/Scheduling")
    assert {"start", "end", "practitioner", "specialty", "_count"} <= {
        p["name"] for p in definition["parameter"]
    }


def test_patient_books_for_self_only(settings: Settings, auth_hub: Hub) -> None:
    """A SMART patient token finds and books for its own patient; naming another patient
    is 403 with nothing written, and others' bookings show only as busy time."""
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
    bob = caller(api, auth_hub, "patient/*.cruds", patient=other.split("/")[1])
    nine, half = at(c.monday, 9), at(c.monday, 9, 30)
    window = f"start={nine}&end={at(c.monday, 10)}&practitioner={c.practitioner}"
    taken = bob.send("POST", "/fhir/Appointment/$book", params(appointment(c, nine, half, 1)))
    assert taken.status_code == 201, taken.get_data(as_text=True)
    bobs = booked(taken)
    found = alice.get(f"/fhir/Appointment/$find?{window}&patient={me}")
    assert found.status_code == 200, found.get_data(as_text=True)
    proposals = [e["resource"] for e in body(found)["entry"]]
    assert nine not in [p["start"] for p in proposals]  # bob's time: busy, nothing more
    assert other not in found.get_data(as_text=True) and bobs["id"] not in found.get_data(
        as_text=True
    )
    assert_outcome(alice.get(f"/fhir/Appointment/$find?{window}&patient={other}"), 403)
    before = appointments(auth_hub)
    for_bob = params(appointment(c, at(c.monday, 11), at(c.monday, 11, 30), patient=1))
    assert_outcome(alice.send("POST", "/fhir/Appointment/$book", for_bob), 403)
    clash = alice.send("POST", "/fhir/Appointment/$book", params(appointment(c, nine, half)))
    outcome = assert_outcome(clash, 409)
    assert other not in str(outcome) and bobs["id"] not in str(outcome)
    assert appointments(auth_hub) == before
    mine = booked(
        alice.send(
            "POST", "/fhir/Appointment/$book", params(appointment(c, half, at(c.monday, 10)))
        )
    )
    assert alice.get(f"/fhir/Appointment/{bobs['id']}").status_code == 404
    cancel = {**mine, "status": "cancelled", "cancelationReason": {"text": "Cannot come"}}
    assert booked(alice.send("POST", "/fhir/Appointment/$book", params(cancel)))["status"] == (
        "cancelled"
    )
    assert_outcome(
        alice.send("POST", "/fhir/Appointment/$book", params({**bobs, "status": "cancelled"})),
        404,
    )
