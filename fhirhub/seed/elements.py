"""Code systems, identifier systems and small FHIR datatype builders shared by the seed modules.

Every builder returns a fresh dict: a server may rewrite references or add ids in place while
processing a transaction, so no two resources may share a mutable sub-object.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from random import Random
from typing import Any

Json = dict[str, Any]

SNOMED = "http://snomed.info/sct"
LOINC = "http://loinc.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM = "http://unitsofmeasure.org"
NUCC = "http://nucc.org/provider-taxonomy"
BCP47 = "urn:ietf:bcp:47"
NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
THO = "http://terminology.hl7.org/CodeSystem/"
FHIR_CS = "http://hl7.org/fhir/"
US_CORE_CAREPLAN_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/careplan-category"
DEGREE_SYSTEM = THO + "v2-0360|2.7"  # the canonical URL the R4 package itself uses

# Local identifier namespaces of the fictional hospital (.example is reserved, RFC 2606).
LOCAL_SID = "https://fhirhub.example/sid/"
MRN_SYSTEM = LOCAL_SID + "mrn"
VISIT_SYSTEM = LOCAL_SID + "visit"
ROLE_SYSTEM = LOCAL_SID + "practitioner-role"
ENDPOINT_SYSTEM = LOCAL_SID + "endpoint"
LOCATION_SYSTEM = LOCAL_SID + "location"
LICENSE_SYSTEM = LOCAL_SID + "ma-medical-license"

# Nothing listens on the discard port: notifications to seeded endpoints go nowhere.
ENDPOINT_ADDRESS = "http://127.0.0.1:9/fhir-notify/{npi}"


@dataclass(frozen=True)
class Term:
    system: str
    code: str
    display: str

    def coding(self) -> Json:
        return {"system": self.system, "code": self.code, "display": self.display}

    def concept(self, text: str | None = None) -> Json:
        return {"coding": [self.coding()], "text": text or self.display}


def tho(code_system: str, code: str, display: str) -> Term:
    return Term(THO + code_system, code, display)


VITAL_SIGNS_CATEGORY = tho("observation-category", "vital-signs", "Vital Signs")
LABORATORY_CATEGORY = tho("observation-category", "laboratory", "Laboratory")
MR_TYPE = tho("v2-0203", "MR", "Medical record number")
VN_TYPE = tho("v2-0203", "VN", "Visit number")
NPI_TYPE = tho("v2-0203", "NPI", "National provider identifier")
PRIMARY_PERFORMER = tho("v3-ParticipationType", "PPRF", "primary performer")
ATTENDER = tho("v3-ParticipationType", "ATND", "attender")


def quantity(value: float, unit: str, code: str) -> Json:
    return {"value": value, "unit": unit, "system": UCUM, "code": code}


def ref(reference: str, display: str | None = None) -> Json:
    out: Json = {"reference": reference}
    if display:
        out["display"] = display
    return out


def conditional_url(resource_type: str, system: str, value: str) -> str:
    """A conditional reference the server resolves by identifier while processing the bundle."""
    return f"{resource_type}?identifier={system}|{value}"


def identifier(system: str, value: str, type_: Term | None = None, use: str = "official") -> Json:
    out: Json = {"use": use}
    if type_ is not None:
        out["type"] = type_.concept()
    out["system"] = system
    out["value"] = value
    return out


def entry(full_url: str, resource: Json) -> Json:
    return {
        "fullUrl": full_url,
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"]},
    }


def conditional_entry(full_url: str, resource: Json, system: str, value: str) -> Json:
    """POST with ifNoneExist, so loading the same directory twice creates nothing new."""
    out = entry(full_url, resource)
    out["request"]["ifNoneExist"] = f"identifier={system}|{value}"
    return out


def new_urn(rng: Random) -> str:
    """A version-4 UUID drawn from the seeded generator (uuid.uuid4 would break determinism)."""
    n = rng.getrandbits(128)
    n = (n & ~(0xF000 << 64)) | (4 << 76)
    n = (n & ~(0xC000 << 48)) | (0x8000 << 48)
    h = f"{n:032x}"
    return f"urn:uuid:{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def npi_check_digit(base9: str) -> int:
    """Luhn check digit over the 80840 health-industry prefix, as CMS defines for NPIs."""
    total = 0
    for position, char in enumerate(reversed("80840" + base9)):
        digit = int(char)
        if position % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return (10 - total % 10) % 10


def make_npi(serial: int, offset: int) -> str:
    # 48271 is prime and coprime with 10**8, so distinct serials give distinct NPIs.
    base9 = f"1{(serial * 48_271 + offset) % 100_000_000:08d}"
    return base9 + str(npi_check_digit(base9))


@lru_cache(maxsize=64)
def _dst_bounds(year: int) -> tuple[date, date]:
    march_first = date(year, 3, 1)
    november_first = date(year, 11, 1)
    start = march_first + timedelta(days=(6 - march_first.weekday()) % 7 + 7)
    end = november_first + timedelta(days=(6 - november_first.weekday()) % 7)
    return start, end


def eastern_offset(day: date) -> str:
    """UTC offset in Boston: DST from the second Sunday of March to the first Sunday of November."""
    start, end = _dst_bounds(day.year)
    return "-04:00" if start <= day < end else "-05:00"


def fmt_datetime(moment: datetime) -> str:
    """Local wall-clock time with its offset; seconds included so it is also a valid instant."""
    return moment.isoformat(timespec="seconds") + eastern_offset(moment.date())


def rounded(value: float, decimals: int) -> float | int:
    return round(value) if decimals == 0 else round(value, decimals)
