"""The patient data a CDS service call works on: the prefetch the EHR sent, else this
server's own store when fhirServer is this server (or absent); a foreign fhirServer without
the prefetch gets 412 (CDS Hooks 2.0 "prefetch"; no outbound call from a web request)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fhirhub.fhir.errors import FhirError
from fhirhub.medication.safety.concepts import ACTIVE_ORDER, ACTIVE_STATEMENT
from fhirhub.storage.documents import StoredVersion

Finder = Callable[[str, str, int], list[StoredVersion]]
LIMIT = 500

# Prefetch templates advertised in discovery; {{context.patientId}} is filled by the EHR.
PREFETCH = {
    "patient": "Patient/{{context.patientId}}",
    "medications": "MedicationRequest?subject=Patient/{{context.patientId}}"
    "&status=active,draft,on-hold",
    "statements": "MedicationStatement?subject=Patient/{{context.patientId}}"
    "&status=active,intended,on-hold",
    "allergies": "AllergyIntolerance?patient=Patient/{{context.patientId}}",
}
# This server's own reads: by subject alone, the status filtered here (a subject x status
# search walked the status token: 10x slower at 16k orders, bench/medication.py).
OWN: dict[str, tuple[str, frozenset[str]]] = {
    "medications": ("MedicationRequest?subject=Patient/{{context.patientId}}", ACTIVE_ORDER),
    "statements": (
        "MedicationStatement?subject=Patient/{{context.patientId}}",
        ACTIVE_STATEMENT,
    ),
}


def bundle_resources(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, dict):
        return []
    if value.get("resourceType") != "Bundle":
        return [value]
    entries = value.get("entry") or []
    return [
        e["resource"]
        for e in entries
        if isinstance(e, dict) and isinstance(e.get("resource"), dict)
    ]


class CdsData:
    def __init__(self, request: dict[str, Any], find: Finder, own_base: str, may_read: bool = True):
        self.request = request
        self.may_read = may_read  # False: a CDS client without fhirAuthorization
        self.find = find
        self.own_base = own_base.rstrip("/")
        self.patient_id = str(request["context"]["patientId"])

    def _query(self, key: str) -> str:
        return PREFETCH[key].replace("{{context.patientId}}", self.patient_id)

    def resources(self, key: str) -> list[dict[str, Any]]:
        prefetch = self.request.get("prefetch") or {}
        if prefetch.get(key) is not None:
            return bundle_resources(prefetch[key])
        server = str(self.request.get("fhirServer") or "").rstrip("/")
        query = self._query(key)
        if server and server != self.own_base:
            return self._remote(server, query)
        if not self.may_read:
            raise FhirError(
                f"prefetch for {query} is missing and the call carries no fhirAuthorization "
                "for this server: send the prefetch or an access token",
                412,
                "incomplete",
            )
        own, statuses = OWN.get(key, (PREFETCH[key], None))
        resource_type, _, search = own.replace("{{context.patientId}}", self.patient_id).partition(
            "?"
        )
        if not search:
            return []
        versions = self.find(resource_type, search, LIMIT)
        if statuses is not None and len(versions) >= LIMIT:  # a long history: by status
            versions = self.find(resource_type, query.partition("?")[2], LIMIT)
        found = [v.resource for v in versions if v.resource]
        return [r for r in found if statuses is None or r.get("status") in statuses]

    def _remote(self, server: str, query: str) -> list[dict[str, Any]]:
        # Web requests never call out (DESIGN: outbound HTTP only in the worker), and a
        # client-named URL fetched from here would be a server-side request forgery path:
        # the spec's answer for data a service cannot obtain is 412.
        raise FhirError(
            f"prefetch for {query} is missing and {server} is not this server: send the "
            "prefetch this service's discovery lists",
            412,
            "incomplete",
        )

    def with_refs(self, key: str) -> list[tuple[str, dict[str, Any]]]:
        return [(f"{r['resourceType']}/{r.get('id', '')}", r) for r in self.resources(key)]
