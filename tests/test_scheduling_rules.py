"""The pure scheduling rules: intervals, weekly hours across DST changes, holidays, claim
keys, time zones, reminder offsets, channel choice, quiet hours, language and text."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from fhirhub.scheduling.rules import appointments as appts
from fhirhub.scheduling.rules import reminders as rules
from fhirhub.scheduling.rules.hours import hours, local, not_available, weekly
from fhirhub.scheduling.rules.intervals import Interval, covers, intersect, normalize, subtract
from fhirhub.scheduling.rules.timezones import TIMEZONE, zone_of

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def span(a: int, b: int) -> Interval:
    return Interval(utc(2030, 1, 1, a), utc(2030, 1, 1, b))


def test_interval_set_operations() -> None:
    assert normalize([span(9, 10), span(8, 9), span(12, 12), span(9, 11)]) == [span(8, 11)]
    assert subtract([span(9, 17)], [span(12, 13), span(16, 18)]) == [span(9, 12), span(13, 16)]
    assert intersect([span(8, 12), span(13, 18)], [span(9, 14)]) == [span(9, 12), span(13, 14)]
    assert covers([span(9, 12)], span(10, 11)) and not covers([span(9, 12)], span(11, 13))
    assert span(9, 10).overlaps(span(9, 11)) and not span(9, 10).overlaps(span(10, 11))


def test_weekly_hours_keep_local_time_across_dst() -> None:
    # New York springs forward on 2030-03-10 and falls back on 2030-11-03 (Sundays).
    entry = {"daysOfWeek": ["mon"], "availableStartTime": "09:00:00", "availableEndTime": "12:00"}
    window = Interval(utc(2030, 3, 1), utc(2030, 3, 19))
    starts = [i.start for i in weekly([entry], NY, window)]
    assert starts == [utc(2030, 3, 4, 14), utc(2030, 3, 11, 13), utc(2030, 3, 18, 13)]
    assert {s.astimezone(NY).time() for s in starts} == {time(9)}
    autumn = weekly([entry], NY, Interval(utc(2030, 10, 27), utc(2030, 11, 6)))
    assert [i.start for i in autumn] == [utc(2030, 10, 28, 13), utc(2030, 11, 4, 14)]
    # A wall time the spring-forward skips moves on with the clock (02:30 -> 03:30 EDT).
    assert local(date(2030, 3, 10), time(2, 30), NY) == utc(2030, 3, 10, 7, 30)
    assert local(date(2030, 3, 31), time(9), BERLIN) == utc(2030, 3, 31, 7)


def test_hours_lunch_break_holiday_and_all_day() -> None:
    days = ["mon", "tue"]
    role: dict[str, Any] = {
        "availableTime": [
            {"daysOfWeek": days, "availableStartTime": "09:00", "availableEndTime": "12:00"},
            {"daysOfWeek": days, "availableStartTime": "13:00", "availableEndTime": "17:00"},
        ],
    }
    window = Interval(utc(2030, 1, 7), utc(2030, 1, 9))  # Monday 7th, Tuesday 8th
    assert hours(role, UTC, window) == [
        Interval(utc(2030, 1, 7, 9), utc(2030, 1, 7, 12)),
        Interval(utc(2030, 1, 7, 13), utc(2030, 1, 7, 17)),
        Interval(utc(2030, 1, 8, 9), utc(2030, 1, 8, 12)),
        Interval(utc(2030, 1, 8, 13), utc(2030, 1, 8, 17)),
    ]
    holiday = {**role, "notAvailable": [{"during": {"start": "2030-01-08", "end": "2030-01-08"}}]}
    assert [i.start.day for i in hours(holiday, UTC, window) or []] == [7, 7]
    assert hours({}, UTC, window) is None  # states no hours: does not limit
    saturday = weekly(
        [{"allDay": True, "daysOfWeek": ["sat"]}], NY, Interval(utc(2030, 1, 1), utc(2030, 1, 8))
    )
    assert saturday == [Interval(utc(2030, 1, 5, 5), utc(2030, 1, 6, 5))]
    leave = not_available([{"during": {"start": "2030-01-07", "end": "2030-01-08"}}], NY)
    assert leave == [Interval(utc(2030, 1, 7, 5), utc(2030, 1, 9, 5))]


def test_claim_keys_share_a_bucket_exactly_when_times_overlap() -> None:
    a = Interval(utc(2030, 1, 1, 9), utc(2030, 1, 1, 9, 30))
    b = Interval(utc(2030, 1, 1, 9, 30), utc(2030, 1, 1, 10))
    c = Interval(utc(2030, 1, 1, 9, 25), utc(2030, 1, 1, 9, 35))
    ka, kb, kc = (set(appts.claim_keys(["Practitioner/p"], i)) for i in (a, b, c))
    assert len(ka) == 6 and not ka & kb and ka & kc and kb & kc
    appointment = {
        "status": "booked",
        "start": "2030-01-01T09:00:00Z",
        "end": "2030-01-01T09:30:00Z",
        "participant": [
            {"actor": {"reference": "Patient/x"}},
            {"actor": {"reference": "Practitioner/p"}},
            {"actor": {"reference": "PractitionerRole/r"}, "required": "information-only"},
            {"actor": {"reference": "HealthcareService/h"}},
            {"actor": {"reference": "Location/l"}, "status": "declined"},
        ],
    }
    assert appts.actors(appointment) == ["Patient/x", "Practitioner/p"]
    assert appts.patients(appointment) == ["Patient/x"]
    assert appts.blocking(appointment)
    for status in ("cancelled", "waitlist", "noshow", "proposed"):
        assert not appts.blocking({**appointment, "status": status})


def test_time_zone_of_an_actor() -> None:
    location = {"extension": [{"url": TIMEZONE, "valueCode": "Europe/Berlin"}]}
    organization = {"extension": [{"url": TIMEZONE, "valueCode": "America/New_York"}]}
    assert zone_of(location, organization, default=UTC) == BERLIN
    assert zone_of({}, organization, default=UTC) == NY
    bad = {"extension": [{"url": TIMEZONE, "valueCode": "Mars/Olympus"}]}
    assert zone_of(bad, None, default=UTC) == UTC


def test_reminder_offsets_and_settings() -> None:
    assert rules.offsets("P7D, PT24H,PT2H") == [
        ("P7D", timedelta(days=7)),
        ("PT24H", timedelta(hours=24)),
        ("PT2H", timedelta(hours=2)),
    ]
    assert rules.parse_offset("P1DT30M") == timedelta(days=1, minutes=30)
    for bad in ("7 days", "P", "PT", "-P1D"):
        with pytest.raises(ValueError):
            rules.parse_offset(bad)
    org = {"extension": [{"url": rules.OFFSETS_EXTENSION, "valueString": "P3D"}]}
    assert rules.offsets_of(org) == "P3D" and rules.offsets_of({}) is None


def patient(*telecom: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "telecom": list(telecom), **extra}


def test_channel_follows_preference_then_rank() -> None:
    email = {"system": "email", "value": "a@example.org", "rank": 2}
    mobile = {"system": "phone", "use": "mobile", "value": "+15550100", "rank": 1}
    home = {"system": "phone", "use": "home", "value": "+15550101", "rank": 0}
    app = {"system": "url", "value": "https://app.example/hook"}
    every = {"email", "sms", "rest-hook"}
    none = rules.Preferences()
    assert rules.contact(patient(email, mobile, home), none, every) == ("sms", "+15550100")
    prefers_email = rules.Preferences("email")
    assert rules.contact(patient(email, mobile), prefers_email, every) == (
        "email",
        "a@example.org",
    )
    assert rules.contact(patient(email, mobile), none, {"email"}) == ("email", "a@example.org")
    assert rules.contact(patient(home), none, every) is None
    assert rules.contact(patient(app), none, every) == ("rest-hook", "https://app.example/hook")
    ended = {**email, "period": {"end": "2020-01-01"}}
    assert rules.contact(patient(ended), none, every) is None


def test_preferences_quiet_hours_and_opt_out() -> None:
    ext = {
        "url": rules.PREFERENCES,
        "extension": [
            {"url": "channel", "valueCode": "sms"},
            {"url": "optOut", "valueBoolean": True},
            {"url": "quietStart", "valueTime": "21:00:00"},
            {"url": "quietEnd", "valueTime": "08:00:00"},
        ],
    }
    prefs = rules.preferences(patient(extension=[ext]))
    assert prefs == rules.Preferences("sms", True, time(21), time(8))
    late = datetime(2030, 1, 7, 23, 0, tzinfo=NY).astimezone(UTC)
    assert rules.quiet_until(late, prefs, NY) == datetime(2030, 1, 8, 8, tzinfo=NY)
    early = datetime(2030, 1, 8, 6, 0, tzinfo=NY).astimezone(UTC)
    assert rules.quiet_until(early, prefs, NY) == datetime(2030, 1, 8, 8, tzinfo=NY)
    assert rules.quiet_until(datetime(2030, 1, 8, 12, tzinfo=NY), prefs, NY) is None
    assert rules.preferences(patient()) == rules.Preferences()


def test_language_and_text_carry_no_clinical_detail() -> None:
    spanish = {"communication": [{"language": {"coding": [{"code": "es-MX"}]}, "preferred": True}]}
    assert rules.language(spanish, set(rules.TEMPLATES)) == "es"
    klingon = {"communication": [{"language": {"coding": [{"code": "tlh"}]}}]}
    assert rules.language(klingon, set(rules.TEMPLATES)) == "en"
    start = utc(2030, 3, 11, 13)  # 09:00 in New York (after the DST change)
    subject, text = rules.render(
        rules.TEMPLATES, "en", start, NY, "Dr. Ana Lind", "Harbor Clinic", "555-0100"
    )
    assert subject == "Appointment reminder"
    assert "2030-03-11 at 09:00 (America/New_York)" in text and "Dr. Ana Lind" in text
    _, fallback = rules.render(rules.REBOOK, "fr", start, NY, "", "", "")
    assert fallback.startswith("We missed you")
