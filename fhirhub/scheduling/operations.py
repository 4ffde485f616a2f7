"""Appointment $find (ITI-115), $hold (ITI-116), $book (ITI-117) and $noshow-rate, as
declarations for the operations registry. Parameter names follow IHE ITI Scheduling 1.0;
the issue's shorter names (patient, location, service-type, appointment-type, duration) are
accepted as well."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fhirhub.fhir.dates import parse_period
from fhirhub.fhir.errors import BadRequest
from fhirhub.operations.model import AccessRule, Call, Operation, Parameter, Result
from fhirhub.scheduling import availability as avail
from fhirhub.scheduling.rules.intervals import Interval
from fhirhub.scheduling.scheduler import MAX_WINDOW, FindRequest, Scheduler, check_duration
from fhirhub.scheduling.statistics import NoShowRates

IHE = "https://profiles.ihe.net/ITI/Scheduling/OperationDefinition"
V2_0276 = "http://terminology.hl7.org/CodeSystem/v2-0276"
# Default visit length by appointment type (v2 0276); otherwise 30 minutes.
DURATIONS = {"FOLLOWUP": 20, "WALKIN": 15, "CHECKUP": 30, "ROUTINE": 30, "EMERGENCY": 30}
DEFAULT_MINUTES = 30
DEFAULT_WINDOW = timedelta(days=14)
MAX_COUNT = 100


def _ref(name: str, doc: str, repeats: bool = True) -> Parameter:
    return Parameter(name, "Reference", 0, "*" if repeats else "1", doc)


def _token(name: str, doc: str) -> Parameter:
    return Parameter(name, "string", 0, "*", doc, search_type="token")


FIND_PARAMETERS = (
    Parameter("start", "dateTime", 0, "1", "Earliest start (with a time zone; default now)."),
    Parameter("end", "dateTime", 0, "1", "Latest end (default start + 14 days, at most 92)."),
    _ref("practitioner", "Practitioner(s), in order of preference (any of them)."),
    _ref("location-reference", "Location(s), in order of preference (any of them)."),
    _ref("location", "Same as location-reference."),
    _ref("patient-reference", "The patient(s): their own appointments count as busy."),
    _ref("patient", "Same as patient-reference."),
    _token("specialty", "Specialty system|code of the practitioner role."),
    _token("service-type", "HealthcareService.type system|code."),
    _token("visit-type", "Appointment type system|code (v2 0276); sets the default length."),
    _token("appointment-type", "Same as visit-type."),
    Parameter("duration", "positiveInt", 0, "1", "Length in minutes (1-1440)."),
    Parameter("_count", "positiveInt", 0, "1", "At most this many proposals (default 10)."),
    Parameter("return", "Bundle", 0, "1", "searchset of proposed Appointments", use="out"),
)
APPOINTMENT_INPUT = (
    Parameter(
        "appointment-reference",
        "Reference",
        0,
        "1",
        "A held (pending) Appointment to book, or for $hold an Appointment to hold.",
    ),
    Parameter(
        "appointment-resource",
        "Appointment",
        0,
        "1",
        "A proposed Appointment from $find (to hold or book); with the id of a booked one "
        "and new times: reschedule (the new one replaces it); status cancelled: cancel.",
    ),
    Parameter("return", "Bundle", 0, "1", "searchset with the Appointment", use="out"),
)


def declarations(scheduler: Scheduler, rates: NoShowRates, zone: ZoneInfo) -> list[Operation]:
    def find(call: Call) -> dict[str, Any]:
        request = find_request(call, zone)
        proposals = scheduler.find(request)
        return searchset(
            [(avail.proposal_url(p), p) for p in proposals], call.base, "Appointment/$find"
        )

    def hold(call: Call) -> Result:
        resource, created = scheduler.hold(_given(call, scheduler))
        return _answer(call, resource, created)

    def book(call: Call) -> Result:
        given = _given(call, scheduler, allow_reference_only=True)
        if "appointment-resource" not in call.params:
            resource, created = scheduler.book_held(str(given["reference"]))
        elif given.get("status") == "cancelled" and given.get("id"):
            resource, created = scheduler.cancel(given)
        elif given.get("id") and given.get("status") == "booked":
            resource, created = scheduler.reschedule(given)
        elif given.get("status") in (None, "proposed", "pending"):
            resource, created = scheduler.book_new(given)
        else:
            raise BadRequest(
                "appointment-resource: status must be proposed or pending (book), booked with "
                "an id (reschedule) or cancelled with an id (cancel)"
            )
        return _answer(call, resource, created)

    def noshow_rate(call: Call) -> dict[str, Any]:
        start = _instant(call.one("start"), "start", zone, False) if call.has("start") else None
        end = _instant(call.one("end"), "end", zone, True) if call.has("end") else None
        actors = [r["reference"] for r in call.all("patient") + call.all("practitioner")]
        return rates.parameters(actors, start, end)

    access = AccessRule(types=("Appointment",), actions="rs")
    write = AccessRule(types=("Appointment",), actions="cu")
    return [
        Operation(
            code="find",
            id="appointment-find",
            title="Find potential appointments",
            description="Free times of practitioners (roles) that fit every required actor's "
            "availability in their own time zone, minus booked and held appointments and busy "
            "slots, as proposed Appointments sorted by start (IHE ITI-115).",
            handler=find,
            resource=("Appointment",),
            parameters=FIND_PARAMETERS,
            access=access,
            based_on=f"{IHE}/appointment-find",
        ),
        Operation(
            code="hold",
            id="appointment-hold",
            title="Hold an appointment",
            description="Keeps a proposed time for FHIRHUB_HOLD_TTL as a pending Appointment "
            "(IHE ITI-116); an expired hold is cancelled by a timer.",
            handler=hold,
            resource=("Appointment",),
            parameters=APPOINTMENT_INPUT,
            affects_state=True,
            access=write,
            based_on=f"{IHE}/appointment-hold",
        ),
        Operation(
            code="book",
            id="appointment-book",
            title="Book an appointment",
            description="Books a held or proposed appointment, reschedules (the new one "
            "replaces the original, which is cancelled) or cancels one (IHE ITI-117). No "
            "double booking: conflicts answer 409.",
            handler=book,
            resource=("Appointment",),
            parameters=APPOINTMENT_INPUT,
            affects_state=True,
            access=write,
            based_on=f"{IHE}/appointment-book",
        ),
        Operation(
            code="noshow-rate",
            id="appointment-noshow-rate",
            title="No-show rate",
            description="Per patient and practitioner: appointments that were due, no-shows "
            "and the rate, in a period (default the last 365 days).",
            handler=noshow_rate,
            resource=("Appointment",),
            parameters=(
                _ref("patient", "Patients to report on."),
                _ref("practitioner", "Practitioners to report on."),
                Parameter("start", "dateTime", 0, "1", "Period start"),
                Parameter("end", "dateTime", 0, "1", "Period end"),
                Parameter("return", "Parameters", 0, "1", "one part per actor", use="out"),
            ),
            access=access,
        ),
    ]


def find_request(call: Call, zone: ZoneInfo) -> FindRequest:
    now = datetime.now(UTC)
    start = _instant(call.one("start"), "start", zone, False) if call.has("start") else now
    end = _instant(call.one("end"), "end", zone, True) if call.has("end") else None
    end = end or start + DEFAULT_WINDOW
    if end <= start:
        raise BadRequest("end must be after start")
    if end - start > MAX_WINDOW:
        raise BadRequest("the window from start to end may be at most 92 days")
    types = call.all("visit-type") + call.all("appointment-type")
    minutes = call.one("duration")
    if minutes is None:
        code = types[0].split("|")[-1] if types else ""
        minutes = DURATIONS.get(code.upper(), DEFAULT_MINUTES)
    duration = timedelta(minutes=int(minutes))
    check_duration(Interval(start, start + duration))
    count = min(int(call.one("_count") or 10), MAX_COUNT)
    details: dict[str, Any] = {}
    services = call.all("service-type")
    if services:
        details["serviceType"] = [{"coding": [_coding(services[0])]}]
    specialties = call.all("specialty")
    if specialties:
        details["specialty"] = [{"coding": [_coding(s)]} for s in specialties[:1]]
    if types:
        details["appointmentType"] = {"coding": [_coding(types[0])]}
    for token in specialties + services + types:
        if "|" not in token:
            raise BadRequest(f"{token[:60]!r}: give tokens as system|code")
    return FindRequest(
        window=Interval(start, end),
        duration=duration,
        practitioners=_refs(call, "practitioner", "Practitioner"),
        locations=_refs(call, "location-reference", "Location")
        + _refs(call, "location", "Location"),
        specialties=specialties,
        services=services,
        patients=_refs(call, "patient-reference", "Patient") + _refs(call, "patient", "Patient"),
        details=details,
        count=count,
    )


def _instant(text: str, name: str, zone: ZoneInfo, upper: bool) -> datetime:
    """A dateTime with a zone, or a date (a whole local day); a time without zone is 400."""
    if "T" in text:
        tail = text.split("T", 1)[1]
        if not (tail.endswith("Z") or "+" in tail or "-" in tail):
            raise BadRequest(f"{name}: {text[:40]!r} has a time but no time zone")
        return parse_period(text, name)[0]
    first, after = parse_period(text, name)
    day = (after - timedelta(days=1)).date() if upper else first.date()
    from fhirhub.scheduling.rules.hours import local

    moment = local(day + timedelta(days=1) if upper else day, datetime.min.time(), zone)
    return moment


def _refs(call: Call, name: str, kind: str) -> list[str]:
    out = []
    for value in call.all(name):
        reference = str(value.get("reference") or "")
        tail = reference.rstrip("/").split("/")
        if len(tail) < 2 or tail[-2] != kind:
            raise BadRequest(f"{name}: {reference[:80]!r} is not a {kind} reference")
        out.append(f"{kind}/{tail[-1]}")
    return out


def _coding(token: str) -> dict[str, str]:
    system, _, code = token.rpartition("|")
    return {"system": system, "code": code} if system else {"code": code}


def _given(call: Call, scheduler: Scheduler, allow_reference_only: bool = False) -> Any:
    resource = call.one("appointment-resource")
    reference = call.one("appointment-reference")
    if (resource is None) == (reference is None):
        raise BadRequest("give exactly one of appointment-reference and appointment-resource")
    if resource is not None:
        return resource
    if allow_reference_only:
        return reference
    stored = scheduler.resources.read(
        "Appointment", str(reference.get("reference", "")).rstrip("/").split("/")[-1]
    )
    return {k: v for k, v in (stored.resource or {}).items() if k not in ("id", "meta")}


def _answer(call: Call, resource: dict[str, Any], created: bool) -> Result:
    url = f"{call.base}/Appointment/{resource['id']}"
    bundle = searchset([(url, resource)], call.base, f"Appointment/${call.operation.code}")
    return Result(bundle, 201 if created else 200)


def searchset(entries: list[tuple[str, dict[str, Any]]], base: str, path: str) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(entries),
        "link": [{"relation": "self", "url": f"{base}/{path}"}],
        "entry": [
            {"fullUrl": url, "resource": resource, "search": {"mode": "match"}}
            for url, resource in entries
        ],
    }
