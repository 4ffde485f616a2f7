"""Reminders under faults, with the real SMTP server (aiosmtpd) and the real database: a
10-minute SMTP outage is ridden out by the durable timer's retries (time simulated by the
runner's clock, no sleeping), a longer one ends as a not-done Communication, and three
workers running at once send each reminder exactly once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask.testing import FlaskClient

from fhirhub.hub import Hub
from fhirhub.storage.store import utc_now_ms
from fhirhub.storage.timers import DONE, FAILED, PENDING
from fhirhub.timers.runner import TimerRunner
from fhirhub.worker.runner import NotificationWorker
from tests import test_scheduling_reminders as reminders_tests
from tests.scheduling_support import appointment, booked, clinic, params, post
from tests.smtp_support import MailServer
from tests.test_notifications_support import wait_for
from tests.test_scheduling_reminders import communications, instant, reminder_key, soon

# The reminder tests' fixtures: a real SMTP server and SMS gateway, settings pointing at them.
settings = reminders_tests.settings  # mail and sms: tests/conftest.py


class Clock:
    """The runner's idea of now, moved by the test."""

    def __init__(self) -> None:
        self.now = utc_now_ms()

    def __call__(self) -> datetime:
        return self.now


def _book_in_three_hours(client: FlaskClient, hub: Hub) -> tuple[str, str, str]:
    """A booked appointment whose only future reminder (PT2H) is due in an hour; its
    reminders planned as the worker's reaction plans them. -> (id, patient, key)"""
    c = clinic(client, all_day=True)
    start = datetime.now(UTC).replace(microsecond=0, second=0) + timedelta(hours=3)
    proposal = appointment(c, instant(start), instant(start + timedelta(minutes=30)))
    made = booked(post(client, "/fhir/Appointment/$book", params(proposal)))
    assert hub.__dict__["reminders"].plan_for(made["id"], made) == 1
    return made["id"], c.patients[0], reminder_key(made["id"])


def _run_through_outage(hub: Hub, key: str, clock: Clock, minutes: int) -> int:
    """Run the job at each retry time until `minutes` after it fell due; returns attempts."""
    store = hub.timers.store
    job = store.live_job(key)
    assert job is not None
    clock.now = job.due
    end = job.due + timedelta(minutes=minutes)
    runner = TimerRunner(store, hub.timer_kinds, "test-runner", timedelta(seconds=30), clock=clock)
    while True:
        runner.run_now()
        job = store.live_job(key)
        assert job is not None
        if job.state != PENDING or job.when > end:
            return job.attempts
        clock.now = job.when


def test_a_ten_minute_smtp_outage_is_ridden_out(
    client: FlaskClient, hub: Hub, mail: MailServer
) -> None:
    appointment_id, patient, key = _book_in_three_hours(client, hub)
    mail.stop()  # connections refused from the due time on
    clock = Clock()
    attempts = _run_through_outage(hub, key, clock, minutes=10)
    job = hub.timers.store.live_job(key)
    assert job is not None and job.state == PENDING
    assert 5 <= attempts < 12  # backing off (15 s doubling to 5 min), not given up
    assert communications(client, patient, f"Appointment/{appointment_id}") == []
    mail.start()  # back after ten minutes: the next retry delivers it
    clock.now = job.when
    runner = TimerRunner(
        hub.timers.store, hub.timer_kinds, "test-runner", timedelta(seconds=30), clock=clock
    )
    assert runner.run_now() == 1
    assert len(mail.messages) == 1 and mail.messages[0].mail["Subject"] == "Appointment reminder"
    done = hub.timers.store.live_job(key)
    assert done is not None and done.state == DONE
    [record] = communications(client, patient, f"Appointment/{appointment_id}")
    assert record["status"] == "completed"
    clock.now += timedelta(minutes=30)
    assert runner.run_now() == 0 and len(mail.messages) == 1  # nothing left to send


def test_an_outage_past_the_retries_is_recorded_not_done(
    client: FlaskClient, hub: Hub, mail: MailServer
) -> None:
    appointment_id, patient, key = _book_in_three_hours(client, hub)
    mail.stop()
    _run_through_outage(hub, key, Clock(), minutes=90)
    job = hub.timers.store.live_job(key)
    assert job is not None and job.state == FAILED and job.attempts == 12
    [record] = communications(client, patient, f"Appointment/{appointment_id}")
    assert record["status"] == "not-done"
    assert record["statusReason"]["text"]
    assert not mail.messages


def test_three_workers_send_each_reminder_once(
    client: FlaskClient, hub: Hub, mail: MailServer
) -> None:
    clinics = [clinic(client, patients=1, all_day=True) for _ in range(6)]
    hubs = [Hub(hub.settings) for _ in range(3)]  # three processes' worth of connections
    for other in hubs:
        other.__dict__["definitions"] = hub.definitions
    workers = [NotificationWorker(other) for other in hubs]
    for worker in workers:
        worker.start()
    try:
        made = [
            booked(post(client, "/fhir/Appointment/$book", params(soon(c, 0)))) for c in clinics
        ]
        wait_for(lambda: len(mail.messages) >= len(made), 60, "every reminder")
        for c, appointment_made in zip(clinics, made, strict=True):
            about = f"Appointment/{appointment_made['id']}"
            wait_for(
                lambda p=c.patients[0], a=about: communications(client, p, a), 15, "the record"
            )
        # A while longer: a second send would come within a few polls.
        deadline = datetime.now(UTC) + timedelta(seconds=3)
        wait_for(lambda: datetime.now(UTC) > deadline, 5, "late duplicates")
    finally:
        for worker in workers:
            worker.shutdown()
        for other in hubs:
            other.close()
    assert len(mail.messages) == len(made)
    for c, appointment_made in zip(clinics, made, strict=True):
        about = f"Appointment/{appointment_made['id']}"
        records = communications(client, c.patients[0], about)
        assert [r["status"] for r in records] == ["completed"]
