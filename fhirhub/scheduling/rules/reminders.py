"""Reminder rules (pure): offsets, the patient's channel, quiet hours, language, text.

Preferences are the Patient extension reminder-preferences (profiles/): `channel` (email,
sms, rest-hook), `optOut` (boolean), `quietStart`/`quietEnd` (local times; no message in between).
Without a channel preference the best-ranked email, mobile/sms or url (rest-hook) telecom
is used.
Reminder text carries only what a reminder needs: when, with whom, where, how to change
it; never the reason, type or any clinical detail.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

PREFERENCES = "https://fhirhub.example/fhir/StructureDefinition/reminder-preferences"
OFFSETS_EXTENSION = "https://fhirhub.example/fhir/StructureDefinition/reminder-offsets"
# Patient.telecom system -> outbound channel; a `url` is a FHIR rest-hook endpoint (the
# patient's app), which receives the Communication.
CHANNEL_OF = {"email": "email", "sms": "sms", "url": "rest-hook"}
_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?$")


def parse_offset(text: str) -> timedelta:
    match = _DURATION.match(text.strip())
    if not match or not any(match.groups()) or text.strip().endswith("T"):
        raise ValueError(f"{text!r} is not a duration like P7D, PT24H or PT30M")
    days, hours, minutes = (int(g or 0) for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes)


def offsets(text: str) -> list[tuple[str, timedelta]]:
    return [(part.strip(), parse_offset(part)) for part in text.split(",") if part.strip()]


def offsets_of(resource: dict[str, Any] | None) -> str | None:
    """A per-Organization/HealthcareService setting: extension reminder-offsets
    (valueString "P7D,PT24H,PT2H")."""
    for extension in (resource or {}).get("extension") or []:
        if extension.get("url") == OFFSETS_EXTENSION and isinstance(
            extension.get("valueString"), str
        ):
            return str(extension["valueString"])
    return None


@dataclass(frozen=True)
class Preferences:
    channel: str | None = None
    opt_out: bool = False
    quiet_start: time | None = None
    quiet_end: time | None = None


def preferences(patient: dict[str, Any]) -> Preferences:
    for extension in patient.get("extension") or []:
        if extension.get("url") != PREFERENCES:
            continue
        parts = {e.get("url"): e for e in extension.get("extension") or []}
        return Preferences(
            channel=(parts.get("channel") or {}).get("valueCode"),
            opt_out=bool((parts.get("optOut") or {}).get("valueBoolean")),
            quiet_start=_time((parts.get("quietStart") or {}).get("valueTime")),
            quiet_end=_time((parts.get("quietEnd") or {}).get("valueTime")),
        )
    return Preferences()


def _time(value: Any) -> time | None:
    if not isinstance(value, str):
        return None
    hour, minute, *rest = (int(p) for p in value.split(".")[0].split(":"))
    return time(hour, minute, rest[0] if rest else 0)


def contact(
    patient: dict[str, Any], prefs: Preferences, available: set[str]
) -> tuple[str, str] | None:
    """(channel, address) to use: the preferred channel if the patient has such a contact,
    else the best-ranked email or SMS contact on a configured channel."""
    options: list[tuple[int, int, int, str, str]] = []
    for index, telecom in enumerate(patient.get("telecom") or []):
        if not isinstance(telecom, dict) or telecom.get("use") == "old":
            continue
        if (telecom.get("period") or {}).get("end"):
            continue
        value = telecom.get("value")
        system = telecom.get("system")
        channel = CHANNEL_OF.get(str(system))
        if system == "phone" and telecom.get("use") == "mobile":
            channel = "sms"
        if channel is None or not isinstance(value, str) or channel not in available:
            continue
        given = telecom.get("rank")
        rank = given if isinstance(given, int) else 1000
        preferred = 0 if channel == prefs.channel else 1
        options.append((preferred, rank, index, channel, value))
    if not options:
        return None
    best = min(options)
    return best[3], best[4]


def quiet_until(moment: datetime, prefs: Preferences, zone: ZoneInfo) -> datetime | None:
    """If `moment` falls in the patient's quiet hours (local), when they end; else None."""
    if prefs.quiet_start is None or prefs.quiet_end is None:
        return None
    local = moment.astimezone(zone)
    start, end = prefs.quiet_start, prefs.quiet_end
    now = local.time()
    inside = (start <= now < end) if start < end else (now >= start or now < end)
    if not inside:
        return None
    day = local.date() if now < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tzinfo=zone).astimezone(moment.tzinfo)


def language(patient: dict[str, Any], templates: set[str]) -> str:
    """The patient's preferred language if a template exists for it, else English."""
    entries = [c for c in patient.get("communication") or [] if isinstance(c, dict)]
    entries.sort(key=lambda c: 0 if c.get("preferred") else 1)
    for entry in entries:
        for coding in (entry.get("language") or {}).get("coding") or []:
            code = str(coding.get("code", "")).lower()
            for candidate in (code, code.split("-")[0]):
                if candidate in templates:
                    return candidate
    return "en"


TEMPLATES: dict[str, tuple[str, str]] = {
    "en": (
        "Appointment reminder",
        "This is a reminder of your appointment on {date} at {time} ({zone}) with {who} "
        "at {where}. To cancel or change it, please contact the clinic{phone}.",
    ),
    "es": (
        "Recordatorio de cita",
        "Le recordamos su cita el {date} a las {time} ({zone}) con {who} en {where}. "
        "Para cancelarla o cambiarla, comuníquese con la clínica{phone}.",
    ),
    "de": (
        "Terminerinnerung",
        "Wir erinnern Sie an Ihren Termin am {date} um {time} ({zone}) bei {who} in "
        "{where}. Zum Absagen oder Verschieben wenden Sie sich bitte an die Praxis{phone}.",
    ),
    "fr": (
        "Rappel de rendez-vous",
        "Nous vous rappelons votre rendez-vous le {date} à {time} ({zone}) avec {who} à "
        "{where}. Pour l'annuler ou le modifier, veuillez contacter le cabinet{phone}.",
    ),
}
REBOOK: dict[str, tuple[str, str]] = {
    "en": (
        "We missed you",
        "We missed you at your appointment on {date}. Please contact the clinic{phone} to "
        "book a new time.",
    ),
    "es": (
        "Le echamos de menos",
        "No pudo asistir a su cita del {date}. Comuníquese con la clínica{phone} para "
        "reservar una nueva hora.",
    ),
}


def render(
    templates: dict[str, tuple[str, str]],
    lang: str,
    start: datetime,
    zone: ZoneInfo,
    who: str,
    where: str,
    phone: str,
) -> tuple[str, str]:
    subject, body = templates.get(lang) or templates["en"]
    local = start.astimezone(zone)
    text = body.format(
        date=local.strftime("%Y-%m-%d"),
        time=local.strftime("%H:%M"),
        zone=zone.key,
        who=who or "your clinician",
        where=where or "the clinic",
        phone=f" ({phone})" if phone else "",
    )
    return subject, text
