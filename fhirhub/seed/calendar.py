"""One calendar for a whole seed run: no clinician (and no patient) is in two office visits at
once, so the generated bookings load through the server's booking check (no double booking,
409 otherwise) and `$find` sees realistic busy time.

Office hours are the clinics' weekly hours (08:00-12:00 and 13:00-17:00 on weekdays, the same
hours the seed's PractitionerRoles publish as availableTime); clinics are closed on the
holidays listed in the roles' notAvailable. A visit is placed at the wanted time if it is
free, else at the next free quarter-hour that day, then on the nearest open day in the given
direction (earlier for past visits, later for booked ones). Placement is deterministic: it
depends only on the order visits are placed in, which is the patient order of the run, and
draws no random numbers (the rest of each record stays as it was drawn).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta

SESSIONS = ((time(8), time(12)), (time(13), time(17)))  # local wall-clock office hours
STEP = 15  # minutes between possible starts
BUCKET = 5  # minutes; the server claims time in 5-minute buckets too
MAX_DAYS = 120  # how far a visit may move before the calendar counts as full


def _minutes(at: time) -> int:
    return at.hour * 60 + at.minute


def holidays(year: int) -> list[tuple[date, str]]:
    """US federal holidays the clinics close on (observed on the nearest weekday)."""

    def nth(month: int, weekday: int, n: int) -> date:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))

    def last(month: int, weekday: int) -> date:
        day = date(year, month + 1, 1) - timedelta(days=1)
        return day - timedelta(days=(day.weekday() - weekday) % 7)

    def observed(day: date) -> date:
        return (
            day - timedelta(days=1)
            if day.weekday() == 5
            else day + timedelta(days=1 if day.weekday() == 6 else 0)
        )

    return [
        (observed(date(year, 1, 1)), "New Year's Day"),
        (nth(1, 0, 3), "Martin Luther King Jr. Day"),
        (nth(2, 0, 3), "Presidents' Day"),
        (last(5, 0), "Memorial Day"),
        (observed(date(year, 6, 19)), "Juneteenth"),
        (observed(date(year, 7, 4)), "Independence Day"),
        (nth(9, 0, 1), "Labor Day"),
        (nth(10, 0, 2), "Columbus Day"),
        (observed(date(year, 11, 11)), "Veterans Day"),
        (nth(11, 3, 4), "Thanksgiving Day"),
        (observed(date(year, 12, 25)), "Christmas Day"),
    ]


def holidays_between(first: date, last: date) -> list[tuple[date, str]]:
    found = [h for year in range(first.year, last.year + 1) for h in holidays(year)]
    return sorted(h for h in found if first <= h[0] <= last)


class Calendar:
    def __init__(self, closed: Iterable[date] = ()) -> None:
        self.closed = set(closed)
        self._busy: dict[str, set[int]] = {}

    def open_on(self, day: date) -> bool:
        return day.weekday() < 5 and day not in self.closed

    def place(self, wanted: datetime, minutes: int, who: Iterable[str], direction: int) -> datetime:
        """Books `minutes` for everyone in `who` at `wanted` or the nearest free time after it
        that day, else on the nearest open day in `direction` (+1 later, -1 earlier)."""
        actors = list(who)
        day, first = wanted.date(), wanted.hour * 60 + wanted.minute
        for _ in range(MAX_DAYS):
            if self.open_on(day):
                for start in self._starts(first, minutes):
                    buckets = self._buckets(day, start, minutes)
                    if all(buckets.isdisjoint(self._busy.get(a, ())) for a in actors):
                        for actor in actors:
                            self._busy.setdefault(actor, set()).update(buckets)
                        return datetime.combine(day, time()) + timedelta(minutes=start)
            day += timedelta(days=direction)
            first = _minutes(SESSIONS[0][0])
        raise RuntimeError(f"no free {minutes}-minute time near {wanted} for {actors}")

    @staticmethod
    def _starts(first: int, minutes: int) -> list[int]:
        """Quarter-hour starts within one session, from `first` on, then the earlier ones."""
        fits = [
            start
            for begin, end in SESSIONS
            for start in range(_minutes(begin), _minutes(end) - minutes + 1, STEP)
        ]
        return [s for s in fits if s >= first] + [s for s in fits if s < first]

    @staticmethod
    def _buckets(day: date, start: int, minutes: int) -> set[int]:
        base = day.toordinal() * 1440
        return {base + m for m in range(start - start % BUCKET, start + minutes, BUCKET)}
