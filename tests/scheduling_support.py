"""Set-up for the scheduling tests: a clinic in New York with one practitioner's weekly
hours (lunch break, a holiday), patients with contacts. (No tests here.)"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask.testing import FlaskClient

from tests.helpers import FHIR_JSON, body, create

TZ = "http://hl7.org/fhir/StructureDefinition/timezone"
SPECIALTY = "http://nucc.org/provider-taxonomy|207Q00000X"
PREFS = "https://fhirhub.example/fhir/StructureDefinition/reminder-preferences"


def next_monday(weeks_ahead: int = 2) -> date:
    today = datetime.now(UTC).date()
    return today + timedelta(days=(7 - today.weekday()) % 7 or 7) + timedelta(weeks=weeks_ahead)


@dataclass
class Clinic:
    organization: str
    location: str
    practitioner: str
    role: str
    patients: list[str]
    monday: date


def new_id(client: FlaskClient, resource: dict[str, Any], **headers: str) -> str:
    return str(body(create(client, resource, **headers))["id"])


def clinic(
    client: FlaskClient,
    patients: int = 2,
    zone: str = "America/New_York",
    all_day: bool = False,
    headers: dict[str, str] | None = None,
) -> Clinic:
    h = headers or {}
    monday = next_monday()
    org = new_id(
        client,
        {
            "resourceType": "Organization",
            "name": "Harbor Clinic",
            "extension": [{"url": TZ, "valueCode": zone}],
        },
        **h,
    )
    location = new_id(
        client,
        {
            "resourceType": "Location",
            "name": "Harbor Clinic, Room 2",
            "telecom": [{"system": "phone", "value": "(617) 555-0100"}],
            "managingOrganization": {"reference": f"Organization/{org}"},
            "extension": [{"url": TZ, "valueCode": zone}],
        },
        **h,
    )
    practitioner = new_id(
        client,
        {
            "resourceType": "Practitioner",
            "name": [{"family": "Lind", "given": ["Ana"], "prefix": ["Dr."]}],
        },
        **h,
    )
    hours: list[dict[str, Any]] = (
        [{"allDay": True}]
        if all_day
        else [
            {
                "daysOfWeek": ["mon", "tue", "wed", "thu", "fri"],
                "availableStartTime": "09:00:00",
                "availableEndTime": "12:00:00",
            },
            {
                "daysOfWeek": ["mon", "tue", "wed", "thu", "fri"],
                "availableStartTime": "13:00:00",
                "availableEndTime": "17:00:00",
            },
        ]
    )
    holiday = (monday + timedelta(days=2)).isoformat()  # the Wednesday
    role = new_id(
        client,
        {
            "resourceType": "PractitionerRole",
            "active": True,
            "practitioner": {"reference": f"Practitioner/{practitioner}"},
            "organization": {"reference": f"Organization/{org}"},
            "location": [{"reference": f"Location/{location}"}],
            "specialty": [
                {"coding": [{"system": "http://nucc.org/provider-taxonomy", "code": "207Q00000X"}]}
            ],
            "availableTime": hours,
            "notAvailable": [
                {"description": "Holiday", "during": {"start": holiday, "end": holiday}}
            ],
        },
        **h,
    )
    people = [
        new_id(
            client,
            {
                "resourceType": "Patient",
                "name": [{"family": f"Doe{i}", "given": ["Jo"]}],
                "telecom": [{"system": "email", "value": f"jo{i}@example.org"}],
            },
            **h,
        )
        for i in range(patients)
    ]
    return Clinic(
        f"Organization/{org}",
        f"Location/{location}",
        f"Practitioner/{practitioner}",
        f"PractitionerRole/{role}",
        [f"Patient/{p}" for p in people],
        monday,
    )


def at(day: date, hour: int, minute: int = 0, zone: str = "America/New_York") -> str:
    from zoneinfo import ZoneInfo

    moment = datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZoneInfo(zone))
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def appointment(
    c: Clinic, start: str, end: str, patient: int = 0, status: str = "proposed"
) -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "status": status,
        "start": start,
        "end": end,
        "participant": [
            {"actor": {"reference": c.patients[patient]}, "status": "accepted"},
            {"actor": {"reference": c.practitioner}, "status": "accepted"},
            {"actor": {"reference": c.location}, "status": "accepted"},
        ],
    }


def params(resource: dict[str, Any] | None = None, reference: str | None = None) -> dict[str, Any]:
    parameter: list[dict[str, Any]] = []
    if resource is not None:
        parameter.append({"name": "appointment-resource", "resource": resource})
    if reference is not None:
        parameter.append(
            {"name": "appointment-reference", "valueReference": {"reference": reference}}
        )
    return {"resourceType": "Parameters", "parameter": parameter}


def post(client: FlaskClient, path: str, payload: dict[str, Any], **headers: str) -> Any:
    return client.post(path, json=payload, headers={**FHIR_JSON, **headers})


def booked(response: Any) -> dict[str, Any]:
    assert response.status_code in (200, 201), response.get_data(as_text=True)
    bundle = body(response)
    [entry] = bundle["entry"]
    resource: dict[str, Any] = entry["resource"]
    return resource
