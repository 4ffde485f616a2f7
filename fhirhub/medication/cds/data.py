"""The patient data a CDS service call works on: the prefetch the EHR sent, else this
server's own store when fhirServer is this server (or absent); a foreign fhirServer without
the prefetch gets 412 (CDS Hooks 2.0 "prefetch"; no outbound call from a web request)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fhirhub.fhir.errors import FhirError
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
    def __init__(self, request: dict[str, Any], find: Finder, own_base: str):
        self.request = request
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
        resource_type, _, search = query.partition("?")
        if not search:
            return []
        return [v.resource for v in self.find(resource_type, search, LIMIT) if v.resource]

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
