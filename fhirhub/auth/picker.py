"""The patient picker's data: which patients a signed-in user may choose, searched by name
or identifier and paged, so a server with thousands of patients stays usable.

Admins may pick any patient; practitioners only the subjects of their active care teams
(the same rule their user/ scopes are confined by). Search text goes into the search
engine as a parameter value, never as query syntax: commas and backslashes are escaped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fhirhub.auth.careteams import care_team_patients
from fhirhub.fhir.errors import FhirError
from fhirhub.service.search import SearchService
from fhirhub.storage.auth_store import Record

PAGE_SIZE = 20
MAX_TEXT = 100
SEARCH_BY = {"name": "name", "identifier": "identifier"}


@dataclass(frozen=True)
class PickerPage:
    patients: list[dict[str, str]]
    total: int | None
    next_offset: int | None
    previous_offset: int | None
    problem: str = ""


class PatientPicker:
    def __init__(self, search: SearchService):
        self.search = search

    def allowed(self, user: Record) -> list[str] | None:
        """Patient ids the user may pick; None: any (admins)."""
        if user.get("admin"):
            return None
        return care_team_patients(self.search, user.get("fhir_user"))

    def may_pick(self, user: Record, patient_id: str) -> bool:
        allowed = self.allowed(user)
        if allowed is not None:
            return patient_id in allowed
        return bool(self.search.find_resources("Patient", f"_id={_escape(patient_id)}", 1))

    def page(self, user: Record, text: str, by: str, offset: int) -> PickerPage:
        allowed = self.allowed(user)
        if allowed is not None and not allowed:
            return PickerPage([], 0, None, None)
        pairs = [("_count", str(PAGE_SIZE)), ("_sort", "family"), ("_total", "accurate")]
        if offset:
            pairs.append(("_offset", str(offset)))
        if allowed is not None:
            pairs.append(("_id", ",".join(_escape(p) for p in allowed)))
        text = text.strip()[:MAX_TEXT]
        if text:
            value = _escape(text) if by == "name" else text.replace(",", "\\,")
            pairs.append((SEARCH_BY.get(by, "name"), value))
        try:
            bundle = self.search.search("Patient", pairs, self_path="Patient")
        except FhirError as error:
            return PickerPage([], None, None, None, problem=error.diagnostics)
        links = {link["relation"]: _offset(link["url"]) for link in bundle.get("link", [])}
        patients = [
            row(e["resource"])
            for e in bundle.get("entry", [])
            if e.get("search", {}).get("mode", "match") == "match"
        ]
        return PickerPage(patients, bundle.get("total"), links.get("next"), links.get("previous"))


def row(patient: dict[str, Any]) -> dict[str, str]:
    names = patient.get("name") or [{}]
    first = names[0] if isinstance(names[0], dict) else {}
    text = first.get("text") or " ".join([*first.get("given", []), first.get("family", "")])
    identifiers = [i.get("value", "") for i in patient.get("identifier", []) if isinstance(i, dict)]
    return {
        "id": patient["id"],
        "name": text.strip() or "(no name)",
        "birth": patient.get("birthDate", ""),
        "identifier": next((i for i in identifiers if i), ""),
    }


def _escape(value: str) -> str:
    # R4 search escaping: a comma would otherwise mean OR, a '$' a composite separator.
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("$", "\\$")


def _offset(url: str) -> int:
    values = parse_qs(urlsplit(url).query).get("_offset", ["0"])
    return int(values[0]) if values[0].isdigit() else 0
