"""The provider directory: one hospital, a few clinics, and clinicians with roles and endpoints.

Directory resources are created conditionally on their identifiers (ifNoneExist), and patient
bundles point at them with conditional references, as EHR feeds do; so the patient bundles
can be loaded in any order after the directory, and reloading the directory is harmless.
"""

from __future__ import annotations

import itertools
from datetime import date
from random import Random

from fhirhub.seed.elements import (
    DEGREE_SYSTEM,
    ENDPOINT_ADDRESS,
    ENDPOINT_SYSTEM,
    LICENSE_SYSTEM,
    LOCATION_SYSTEM,
    NPI_SYSTEM,
    NPI_TYPE,
    ROLE_SYSTEM,
    Json,
    Term,
    conditional_entry,
    identifier,
    make_npi,
    new_urn,
    ref,
    tho,
)
from fhirhub.seed.hours import available_time, not_available, schedule_entry, zone_extension
from fhirhub.seed.models import Clinician, Directory, Place, Site, Vocabulary

PATIENTS_PER_CLINICIAN = 10
MIN_CLINICIANS = 5


def clinician_count(patients: int) -> int:
    return max(MIN_CLINICIANS, -(-patients // PATIENTS_PER_CLINICIAN))


def clinic_count(patients: int) -> int:
    return 3 + min(9, patients // 1000)


def _phone(serial: int) -> str:
    # 555-0100..555-0199 is the range reserved for fiction.
    return f"(617) 555-01{serial % 100:02d}"


def _address(line: str, place: Place, state: str, country: str) -> Json:
    return {
        "use": "work",
        "type": "both",
        "line": [line],
        "city": place.city,
        "district": place.district,
        "state": state,
        "postalCode": place.postal_code,
        "country": country,
    }


def _site(rng: Random, npi: str, name: str, place: Place, line: str, kind: Term, n: int) -> Site:
    return Site(
        urn=new_urn(rng),
        npi=npi,
        name=name,
        location_urn=new_urn(rng),
        location_id=f"loc-{npi}",
        location_type=kind,
        place=place,
        line=line,
        phone=_phone(n),
    )


def _site_entries(site: Site, parent: Site | None, vocab: Vocabulary) -> tuple[Json, Json]:
    address = _address(site.line, site.place, vocab.state, vocab.country)
    telecom = [{"system": "phone", "value": site.phone, "use": "work"}]
    org: Json = {
        "resourceType": "Organization",
        "extension": [zone_extension()],
        "identifier": [identifier(NPI_SYSTEM, site.npi, NPI_TYPE)],
        "active": True,
        "type": [tho("organization-type", "prov", "Healthcare Provider").concept()],
        "name": site.name,
        "telecom": telecom,
        "address": [address],
    }
    if parent is not None:
        org["partOf"] = ref(parent.urn, parent.name)
    location: Json = {
        "resourceType": "Location",
        "extension": [zone_extension()],
        "identifier": [identifier(LOCATION_SYSTEM, site.location_id)],
        "status": "active",
        "name": site.name,
        "mode": "instance",
        "type": [site.location_type.concept()],
        "telecom": [dict(t) for t in telecom],
        "address": dict(address, line=[site.line]),  # fresh list: not shared with the Organization
        "physicalType": tho("location-physical-type", "bu", "Building").concept(),
        "managingOrganization": ref(site.urn, site.name),
    }
    return (
        conditional_entry(site.urn, org, NPI_SYSTEM, site.npi),
        conditional_entry(site.location_urn, location, LOCATION_SYSTEM, site.location_id),
    )


def _clinician_entries(
    rng: Random,
    clinician: Clinician,
    given: str,
    family: str,
    sex: str,
    vocab: Vocabulary,
    hours: tuple[date, list[tuple[date, str]]],
) -> list[Json]:
    anchor, closed = hours
    degree, degree_name, _ = rng.choices(
        vocab.directory["degrees"], [d[2] for d in vocab.directory["degrees"]]
    )[0]
    since = 1985 + rng.randrange(36)
    practitioner_urn, role_urn, endpoint_urn = new_urn(rng), new_urn(rng), new_urn(rng)
    site = clinician.site
    email = "".join(ch for ch in f"{given}.{family}".lower() if ch.isalnum() or ch == ".")
    practitioner: Json = {
        "resourceType": "Practitioner",
        "identifier": [identifier(NPI_SYSTEM, clinician.npi, NPI_TYPE)],
        "active": True,
        "name": [
            {
                "use": "official",
                "family": family,
                "given": [given],
                "prefix": ["Dr."],
                "suffix": [degree],
            }
        ],
        "telecom": [
            {"system": "phone", "value": site.phone, "use": "work"},
            {"system": "email", "value": f"{email}@fhirhub.example", "use": "work"},
        ],
        "gender": sex,
        "qualification": [
            {
                "identifier": [
                    identifier(LICENSE_SYSTEM, f"{degree}{rng.randrange(10**5, 10**6)}")
                ],
                "code": Term(DEGREE_SYSTEM, degree, degree_name).concept(degree),
                "period": {"start": f"{since}-07-01"},
                "issuer": {"display": vocab.directory["license_board"]},
            }
        ],
    }
    specialty = clinician.specialty
    emergency = specialty.key == "emergency"
    role: Json = {
        "resourceType": "PractitionerRole",
        "identifier": [identifier(ROLE_SYSTEM, clinician.role_id)],
        "active": True,
        "period": {"start": f"{since + rng.randrange(1, 4)}-09-01"},
        "practitioner": ref(practitioner_urn, clinician.name),
        "organization": ref(site.urn, site.name),
        "code": [tho("practitioner-role", "doctor", "Doctor").concept()],
        "specialty": [
            {
                "coding": [specialty.nucc.coding(), specialty.practice.coding()],
                "text": specialty.nucc.display,
            }
        ],
        "location": [ref(site.location_urn, site.name)],
        "telecom": [{"system": "phone", "value": site.phone, "use": "work"}],
        "availableTime": available_time(emergency),
        "notAvailable": not_available(closed, anchor),
        "endpoint": [ref(endpoint_urn)],
    }
    endpoint: Json = {
        "resourceType": "Endpoint",
        "identifier": [identifier(ENDPOINT_SYSTEM, f"ep-{clinician.npi}")],
        "status": "active",
        "connectionType": tho("endpoint-connection-type", "hl7-fhir-rest", "HL7 FHIR").coding(),
        "name": f"FHIR notifications for {clinician.name}",
        "managingOrganization": ref(site.urn, site.name),
        "payloadType": [tho("endpoint-payload-type", "any", "Any").concept()],
        "payloadMimeType": ["application/fhir+json"],
        "address": ENDPOINT_ADDRESS.format(npi=clinician.npi),
    }
    return [
        conditional_entry(endpoint_urn, endpoint, ENDPOINT_SYSTEM, f"ep-{clinician.npi}"),
        conditional_entry(practitioner_urn, practitioner, NPI_SYSTEM, clinician.npi),
        conditional_entry(role_urn, role, ROLE_SYSTEM, clinician.role_id),
        schedule_entry(new_urn(rng), clinician, role_urn, practitioner_urn, anchor),
    ]


def build_directory(
    patients: int,
    seed: int,
    vocab: Vocabulary,
    anchor: date,
    closed: list[tuple[date, str]],
) -> Directory:
    """`anchor` and `closed` (holidays): the roles' notAvailable and Schedules' horizon."""
    rng = Random(f"fhirhub-seed:{seed}:directory")
    npi_offset = rng.randrange(10**8)
    serial = itertools.count()
    table = vocab.directory
    info = table["hospital"]
    hospital_place = Place(info["city"], info["postalCode"], info["district"])
    hospital = _site(
        rng,
        make_npi(next(serial), npi_offset),
        info["name"],
        hospital_place,
        info["line"],
        tho("v3-RoleCode", *info["location_type"]),
        0,
    )
    clinics: list[Site] = []
    for i in range(clinic_count(patients)):
        kind = table["clinic_kinds"][i % len(table["clinic_kinds"])]
        place = vocab.cities[(i + 1) % len(vocab.cities)]
        street_name = f"{rng.choice(vocab.streets)} {rng.choice(vocab.street_suffixes)}"
        street = f"{rng.randint(10, 990)} {street_name}"
        clinics.append(
            _site(
                rng,
                make_npi(next(serial), npi_offset),
                f"{place.city} {kind['suffix']}",
                place,
                street,
                tho("v3-RoleCode", *kind["location_type"]),
                i + 1,
            )
        )
    site_entries = [_site_entries(hospital, None, vocab)]
    site_entries += [_site_entries(clinic, hospital, vocab) for clinic in clinics]
    entries: list[Json] = [org for org, _ in site_entries] + [loc for _, loc in site_entries]

    clinicians: list[Clinician] = []
    people: list[Json] = []
    for k in range(clinician_count(patients)):
        specialty = vocab.specialties[vocab.rotation[k % len(vocab.rotation)]]
        sex = rng.choice(("female", "male"))
        given, family = rng.choice(vocab.given[sex]), rng.choice(vocab.family)
        npi = make_npi(next(serial), npi_offset)
        site = clinics[k % len(clinics)] if specialty.primary_care else hospital
        clinician = Clinician(npi, f"Dr. {given} {family}", specialty, site, f"role-{npi}")
        clinicians.append(clinician)
        people += _clinician_entries(rng, clinician, given, family, sex, vocab, (anchor, closed))
    by_specialty: dict[str, list[Clinician]] = {}
    for clinician in clinicians:
        by_specialty.setdefault(clinician.specialty.key, []).append(clinician)
    # Referenced resources first, so a server that processes entries in order still resolves.
    order = {"Endpoint": 0, "Practitioner": 1, "PractitionerRole": 2, "Schedule": 3}
    entries += sorted(people, key=lambda e: order[e["resource"]["resourceType"]])
    return Directory(
        hospital=hospital,
        clinics=tuple(clinics),
        clinicians=tuple(clinicians),
        by_specialty={k: tuple(v) for k, v in by_specialty.items()},
        entries=tuple(entries),
    )
