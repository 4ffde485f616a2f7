"""Seed data a clinic can schedule on (what `make run` loads): it loads through the booking
check (no practitioner or patient double-booked), and `$find` offers times inside the roles'
published hours (lunch break, holidays) that miss every seeded booking; one of them books."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fhirhub.app import create_app
from fhirhub.fhir.dates import parse_period
from fhirhub.hub import Hub
from fhirhub.scheduling.rules import appointments as appts
from fhirhub.seed.calendar import holidays_between
from fhirhub.seed_loader import load_seed
from tests.helpers import body
from tests.scheduling_support import booked, params, post

NEW_YORK = ZoneInfo("America/New_York")


def _all(client: Any, query: str) -> list[dict[str, Any]]:
    response = client.get(f"/fhir/{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    return [e["resource"] for e in body(response).get("entry", [])]


def _keys(actors: list[str], appointment: dict[str, Any]) -> list[str]:
    interval = appts.period(appointment)
    assert interval is not None
    return appts.claim_keys(actors, interval)


def test_seed_schedules_are_bookable(indexed_hub: Hub) -> None:
    hub = indexed_hub
    load_seed(hub, 20)  # raises on a 409: a double booking in the generated data
    client = create_app(hub.settings, hub).test_client()
    booked_appts = _all(client, "Appointment?status=booked&_count=1000")
    assert booked_appts
    taken: dict[str, set[str]] = defaultdict(set)
    for appointment in booked_appts:
        for key in _keys(appts.actors(appointment), appointment):
            actor = key.split("|")[0]
            assert key not in taken[actor], f"{actor} double-booked"
            taken[actor].add(key)
    roles = _all(client, "PractitionerRole?_count=100")
    schedules = _all(client, "Schedule?_count=100")
    assert len(schedules) == len(roles)
    # The busiest clinic physician: $find over the next two weeks.
    practitioner = max(
        (k.split("|")[0] for k in taken if k.startswith("Practitioner/")),
        key=lambda p: len(taken[p]),
    )
    now = datetime.now(UTC)
    window = f"start={(now + timedelta(days=1)).date()}&end={(now + timedelta(days=15)).date()}"
    found = _all(client, f"Appointment/$find?{window}&practitioner={practitioner}&_count=100")
    assert len(found) == 100  # the page is full: there is plenty of free time
    closed = {d for d, _ in holidays_between(now.date(), now.date() + timedelta(days=20))}
    for proposal in found:
        start = parse_period(proposal["start"], "start")[0].astimezone(NEW_YORK)
        end = parse_period(proposal["end"], "end")[0].astimezone(NEW_YORK)
        assert start.weekday() < 5 and start.date() not in closed
        assert (8 <= start.hour < 12 and end.hour * 60 + end.minute <= 12 * 60) or (
            start.hour >= 13 and end.hour * 60 + end.minute <= 17 * 60
        ), proposal["start"]
        keys = _keys([practitioner], proposal)
        assert not set(keys) & taken[practitioner], f"{proposal['start']} is booked"
        site = [p for p in proposal["participant"] if p["actor"]["reference"].startswith("Loc")]
        assert site and site[0]["required"] == "information-only"  # a building, not a room
    # On the day of one of its bookings, that time is not offered, others are.
    target = min(
        (a for a in booked_appts if practitioner in appts.actors(a)), key=lambda a: a["start"]
    )
    day = parse_period(target["start"], "start")[0].astimezone(NEW_YORK).date()
    that_day = _all(
        client, f"Appointment/$find?start={day}&end={day}&practitioner={practitioner}&_count=100"
    )
    offered = {a["start"] for a in that_day}
    booked_at = parse_period(target["start"], "start")[0].astimezone(UTC)
    assert offered and booked_at.strftime("%Y-%m-%dT%H:%M:%SZ") not in offered
    for proposal in that_day:
        keys = _keys([practitioner], proposal)
        assert not set(keys) & taken[practitioner], f"{proposal['start']} is booked"
    # A patient books the first time free for both; the practitioner's time is then taken.
    patient = "Patient/" + _all(client, "Patient?_count=1")[0]["id"]
    query = f"Appointment/$find?{window}&practitioner={practitioner}&patient={patient}"
    [first] = _all(client, f"{query}&_count=1")
    result = booked(post(client, "/fhir/Appointment/$book", params(first)))
    assert result["status"] == "booked"
    again = _all(client, f"Appointment/$find?{window}&practitioner={practitioner}&_count=5")
    assert first["start"] not in [a["start"] for a in again]


def test_seed_calendar_never_double_books() -> None:
    """All office appointments of a larger run (past and booked): nobody in two at once,
    all within the published hours, none on a holiday; the same run twice is identical."""
    from datetime import date

    from fhirhub.seed import generate_bundles

    anchor = date(2026, 11, 20)  # Thanksgiving and Christmas ahead
    closed = {
        d for d, _ in holidays_between(anchor - timedelta(days=800), anchor.replace(year=2027))
    }
    taken: dict[str, set[str]] = defaultdict(set)
    count = 0
    bundles = list(generate_bundles(300, seed=3, anchor=anchor))
    for bundle in bundles:
        for entry in bundle["entry"]:
            appointment = entry["resource"]
            if appointment["resourceType"] != "Appointment":
                continue
            count += 1
            interval = appts.period(appointment)
            assert interval is not None
            local = interval.start.astimezone(NEW_YORK)
            assert local.date() not in closed and local.weekday() < 5
            minutes = local.hour * 60 + local.minute
            length = (interval.end - interval.start).total_seconds() / 60
            assert (minutes >= 480 and minutes + length <= 720) or (
                minutes >= 780 and minutes + length <= 1020
            )
            # Conditional and urn references (resolved on load): compared as written.
            who = [
                p["actor"]["reference"]
                for p in appointment["participant"]
                if p["required"] == "required"
            ]
            assert len(who) == 2
            for key in appts.claim_keys(who, interval):
                actor = key.split("|")[0]
                assert key not in taken[actor], f"{actor} twice at {appointment['start']}"
                taken[actor].add(key)
            site = appointment["participant"][-1]
            assert (
                site["actor"]["reference"].startswith("Location?")
                and site["required"] == "information-only"
            )
    assert count > 600
    assert bundles == list(generate_bundles(300, seed=3, anchor=anchor))
