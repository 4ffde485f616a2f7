"""One patient's complete record: demographics, care team, and the clinical history around them."""

from __future__ import annotations

from datetime import timedelta
from random import Random

from fhirhub.seed import appointments, encounters, problems, treatment
from fhirhub.seed.context import PatientContext, SeedRun
from fhirhub.seed.elements import (
    LOINC,
    MR_TYPE,
    MRN_SYSTEM,
    Json,
    Term,
    fmt_datetime,
    identifier,
    new_urn,
    tho,
)

# (lowest age, highest age, weight): roughly the age pyramid of a US primary-care panel.
AGE_BANDS = ((3, 17, 15), (18, 34, 20), (35, 49, 19), (50, 64, 21), (65, 79, 18), (80, 95, 7))
CARE_TEAM_CATEGORY = Term(LOINC, "LA28865-6", "Longitudinal care-coordination focused care team")
MAX_SPECIALISTS = 3


def make_mrn(index: int, offset: int) -> str:
    # 7919 is coprime with 10**8, so every index in a run gets its own MRN.
    return f"{(index * 7919 + offset) % 100_000_000:08d}"


def patient_entries(run: SeedRun, index: int) -> list[Json]:
    """All transaction entries for patient number `index`, independent of bundle boundaries."""
    rng = Random(f"fhirhub-seed:{run.seed}:patient:{index}")
    ctx, patient = _demographics(run, rng, index)
    ctx.add(ctx.urn, patient)
    problems.choose_chronic(ctx)
    _choose_specialists(ctx)
    encounters.plan_visits(ctx)
    problems.add_conditions(ctx)
    problems.add_allergies(ctx)
    _add_care_team(ctx)
    encounters.add_visits(ctx)
    treatment.add_medication_requests(ctx)
    treatment.add_care_plans(ctx)
    appointments.add_future_appointments(ctx)
    return ctx.entries


def _phone(rng: Random, area_codes: tuple[str, ...]) -> str:
    return f"({rng.choice(area_codes)}) 555-01{rng.randrange(100):02d}"


def _demographics(run: SeedRun, rng: Random, index: int) -> tuple[PatientContext, Json]:
    vocab = run.vocab
    sex = rng.choice(("female", "male"))
    low, high, _ = rng.choices(AGE_BANDS, [b[2] for b in AGE_BANDS])[0]
    age = rng.randint(low, high)
    birth = run.anchor - timedelta(days=int(age * 365.2425) + rng.randrange(1, 365))
    given = [rng.choice(vocab.given[sex])]
    if rng.random() < 0.4:
        given.append(rng.choice(vocab.given[sex]))
    family = rng.choice(vocab.family)
    place = rng.choice(vocab.cities)
    line = [
        f"{rng.randint(1, 999)} {rng.choice(vocab.streets)} {rng.choice(vocab.street_suffixes)}"
    ]
    if rng.random() < 0.25:
        line.append(f"Apt {rng.randint(1, 40)}")
    gp = rng.choice(run.directory.primary_care(children=age < 18))
    ctx = PatientContext(
        run=run,
        rng=rng,
        urn=new_urn(rng),
        mrn=make_mrn(index, run.mrn_offset),
        name=f"{given[0]} {family}",
        sex=sex,
        birth_date=birth,
        gp=gp,
        careteam_urn=new_urn(rng),
    )
    telecom: list[Json] = [
        {"system": "phone", "value": _phone(rng, vocab.area_codes), "use": "mobile", "rank": 1}
    ]
    if age >= 18 and rng.random() < 0.7:
        handle = "".join(ch for ch in f"{given[0]}.{family}".lower() if ch.isalnum() or ch == ".")
        telecom.append({"system": "email", "value": f"{handle}{rng.randrange(10, 99)}@example.com"})
    language, language_text = rng.choices(vocab.languages, vocab.language_weights)[0]
    hospital = run.directory.hospital
    patient: Json = {
        "resourceType": "Patient",
        "identifier": [
            dict(
                identifier(MRN_SYSTEM, ctx.mrn, MR_TYPE, use="usual"),
                assigner={"display": hospital.name},
            )
        ],
        "active": True,
        "name": [{"use": "official", "family": family, "given": given}],
        "telecom": telecom,
        "gender": sex,
        "birthDate": birth.isoformat(),
        "address": [
            {
                "use": "home",
                "type": "physical",
                "line": line,
                "city": place.city,
                "district": place.district,
                "state": vocab.state,
                "postalCode": place.postal_code,
                "country": vocab.country,
            }
        ],
    }
    if age >= 18:
        patient["maritalStatus"] = rng.choices(vocab.marital, vocab.marital_weights)[0].concept()
    else:
        parent_sex = rng.choice(("female", "male"))
        patient["contact"] = [
            {
                "relationship": [
                    tho("v2-0131", "N", "Next-of-Kin").concept(),
                    tho(
                        "v3-RoleCode",
                        *(("MTH", "mother") if parent_sex == "female" else ("FTH", "father")),
                    ).concept(),
                ],
                "name": {
                    "use": "official",
                    "family": family,
                    "given": [rng.choice(vocab.given[parent_sex])],
                },
                "telecom": [
                    {"system": "phone", "value": _phone(rng, vocab.area_codes), "use": "mobile"}
                ],
            }
        ]
    patient["communication"] = [{"language": language.concept(language_text), "preferred": True}]
    patient["generalPractitioner"] = [gp.practitioner_ref()]
    patient["managingOrganization"] = hospital.org_ref()
    return ctx, patient


def _choose_specialists(ctx: PatientContext) -> None:
    for condition in ctx.chronic:
        key = condition.definition.specialty
        if key is None or key in ctx.specialists or len(ctx.specialists) >= MAX_SPECIALISTS:
            continue
        candidates = ctx.directory.by_specialty.get(key)
        if candidates:
            ctx.specialists[key] = ctx.rng.choice(candidates)
    for condition in ctx.chronic:
        key = condition.definition.specialty
        condition.clinician = ctx.specialists.get(key, ctx.gp) if key else ctx.gp


def _add_care_team(ctx: PatientContext) -> None:
    start = ctx.visits[0].start.date().isoformat()
    gp = ctx.gp
    participants: list[Json] = [
        {
            "role": [gp.specialty.role.concept()],
            "member": gp.practitioner_ref(),
            "onBehalfOf": gp.site.org_ref(),  # allowed because the member is a Practitioner
            "period": {"start": start},
        }
    ]
    for clinician in ctx.specialists.values():
        participants.append(
            {
                "role": [clinician.specialty.role.concept()],
                "member": clinician.role_ref(),
                "period": {"start": start},
            }
        )
    if len(participants) < 2:
        # A practice pairs each primary-care physician with a colleague who covers absences.
        colleagues = [
            c for c in ctx.directory.primary_care(children=ctx.age < 18) if c.npi != gp.npi
        ]
        if colleagues:
            covering = ctx.rng.choice(colleagues)
            participants.append(
                {
                    "role": [ctx.vocab.covering_role.concept()],
                    "member": covering.role_ref(),
                    "period": {"start": start},
                }
            )
    team: Json = {
        "resourceType": "CareTeam",
        "status": "active",
        "category": [CARE_TEAM_CATEGORY.concept()],
        "name": f"Care team for {ctx.name}",
        "subject": ctx.subject(),
        "period": {"start": start},
        "participant": participants,
    }
    if ctx.chronic:
        team["reasonReference"] = [c.as_ref() for c in ctx.chronic]
    team["managingOrganization"] = [gp.site.org_ref()]
    team["telecom"] = [{"system": "phone", "value": gp.site.phone, "use": "work"}]
    team["note"] = [
        {"time": fmt_datetime(ctx.visits[0].start), "text": "Care team reviewed at intake."}
    ]
    ctx.add(ctx.careteam_urn, team)
