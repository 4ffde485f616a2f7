"""The AccessPolicy for one access token: SMART scopes turned into database filters.

Each scope rule covering a type becomes a filter: the patient compartment it is confined
to (patient/ scopes: the launch patient; user/ scopes of a practitioner: the patients of
their active care teams; admins and system/ scopes: none), AND its v2 query restriction.
Several rules are OR-ed. The same filter serves searches (in the database), includes and
single resources (evaluated in memory by filter_eval, as subscriptions do), so what a
search returns and what a read allows cannot disagree.

Writes need more than a filter: an access-granting write (a CareTeam) needs its subject's
care managed, and a confined token writes shared types only as fhirhub/auth/write_rules.py
allows (its own Practitioner, PractitionerRole, Endpoint and Subscription; nothing else).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fhirhub.auth.careteams import managed_patients
from fhirhub.auth.scopes import ScopeRule, Scopes
from fhirhub.auth.shares import patient_facing_filter, share_filters
from fhirhub.auth.write_rules import (
    OWN_SUBSCRIPTION,
    PATIENT_LINKED,
    WriteRules,
    shared_kind,
)
from fhirhub.fhir.errors import FhirError, Forbidden
from fhirhub.fhir.search.extract import COMPARTMENT_FIELD, Extractor
from fhirhub.fhir.search.query import SearchQuery
from fhirhub.service import access
from fhirhub.service.access_grants import AccessGrant, GrantRegistry, patient_id
from fhirhub.service.access_shares import ShareRule
from fhirhub.service.search import SearchService
from fhirhub.storage import filter_eval
from fhirhub.storage.documents import INDEX_PREFIX, StoredVersion
from fhirhub.storage.query_translation import NOTHING, merge_filters
from fhirhub.storage.search_store import current_document
from fhirhub.storage.store import utc_now_ms

Document = dict[str, Any]
VERBS = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}
WRITES = frozenset("cud")
# What patient/ scopes may write outside the compartment (the patient's own Subscriptions,
# Tasks and Devices about the patient).
PATIENT_KINDS = frozenset({PATIENT_LINKED, OWN_SUBSCRIPTION})


@dataclass
class TokenPolicy:
    scopes: Scopes
    # Patient ids each context is confined to; None: not confined.
    confinement: dict[str, list[str] | None]
    compartment_types: frozenset[str]
    search: SearchService
    extractor: Extractor
    who: access.Principal = field(default_factory=lambda: access.Principal(""))
    grants: GrantRegistry = field(default_factory=GrantRegistry)
    # Search parameters that place a resource of each type in a patient's compartment.
    compartment_params: dict[str, frozenset[str]] = field(default_factory=dict)
    base: str = ""
    # Narrower access shared with the principal (referral Consents): looked up once per token.
    shares: Callable[[str], list[ShareRule]] | None = None
    patient_facing: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _cache: dict[tuple[str, str], Document | None] = field(default_factory=dict)
    _managed: list[str] | None = None
    _writes: WriteRules | None = None

    def check_type(self, resource_type: str, action: str) -> None:
        if not self.scopes.for_action(resource_type, action):
            raise Forbidden(
                f"the access token's scopes do not allow {VERBS[action]} on {resource_type}"
            )

    def check_resource(self, action: str, resource_type: str, resource: Document) -> None:
        self.check_type(resource_type, action)
        if not self.allows(action, resource_type, resource):
            raise Forbidden(
                f"{resource_type} is outside what the access token may {VERBS[action]} "
                "(patient compartment, care teams or scope restrictions)"
            )

    def allows(self, action: str, resource_type: str, resource: Document) -> bool:
        if not self.scopes.for_action(resource_type, action):
            return False
        query = self.search_filter(resource_type, action)
        return query is None or filter_eval.matches(self._document(resource), query)

    def search_filter(self, resource_type: str, actions: str) -> Document | None:
        key = (resource_type, actions)
        if key not in self._cache:
            self._cache[key] = self._build(resource_type, actions)
        return self._cache[key]

    def unrestricted(self) -> bool:
        """Full access to everything (admin users, system/*.cruds): for endpoints that have
        no finer-grained check."""
        return any(
            r.resource_type == "*"
            and r.actions == frozenset("cruds")
            and not r.query
            and self.confinement.get(r.context, []) is None
            for r in self.scopes.rules
        )

    def principal(self) -> access.Principal:
        return self.who

    @property
    def writes(self) -> WriteRules:
        if self._writes is None:
            self._writes = WriteRules(self, self.grants, self.base)
        return self._writes

    def check_write(
        self, action: str, resource_type: str, old: Document | None, new: Document | None
    ) -> None:
        self.writes.check(action, resource_type, old, new)

    def owns(self, resource_type: str, resource: Document) -> bool:
        return self.writes.owns(resource_type, resource)

    def confined_only(self, resource_type: str, action: str) -> bool:
        """Is every rule allowing `action` on the type confined (no unconfined rule)?"""
        return all(
            self.confinement.get(r.context, []) is not None
            for r in self.scopes.for_action(resource_type, action)
        )

    def manages(self, grant: AccessGrant, action: str, patient: str) -> bool:
        """May the token widen access to this patient's record through `grant`'s type? An
        unconfined rule may; a confined one only within its patients, and then an admin or a
        manager of the patient's care (fhirhub/auth/careteams.py)."""
        for rule in self.scopes.for_action(grant.resource_type, action):
            patients = self.confinement.get(rule.context, [])
            if patients is None:
                return True
            if patient not in patients:
                continue
            if self.who.admin or patient in self._managed_patients():
                return True
        return False

    def _managed_patients(self) -> list[str]:
        if self._managed is None:
            with access.unrestricted():
                self._managed = managed_patients(self.search, self.who.fhir_user)
        return self._managed

    def reads_patient(self, resource_type: str, patient_reference: str) -> bool:
        pid = patient_id(patient_reference)
        for rule in self.scopes.for_action(resource_type, "r"):
            patients = self.confinement.get(rule.context, [])
            if patients is None or resource_type not in self.compartment_types:
                return True
            if pid is not None and pid in patients:
                return True
        return False

    def check_criteria(self, query: SearchQuery) -> None:
        """Criteria that can only match what the token may not read are refused: a type it
        may not read, a patient-scoped token watching outside the patient's compartment,
        or patients pinned by the criteria that are all outside the token's patients."""
        resource_type = query.resource_type
        self.check_type(resource_type, "r")
        rules = self.scopes.for_action(resource_type, "r")
        if any(self.confinement.get(r.context, []) is None for r in rules):
            return
        compartment = resource_type in self.compartment_types
        if not compartment and self._patient_only():
            raise Forbidden(
                "a patient's Subscription can only watch resources in the patient's "
                f"compartment, not {resource_type}"
            )
        if self.search_filter(resource_type, "r") == NOTHING:
            raise Forbidden(f"the criteria match no {resource_type} the token may read")
        if not compartment:
            return
        allowed = {p for r in rules for p in self.confinement.get(r.context) or []}
        pinned = pinned_patients(query, self.compartment_params.get(resource_type, frozenset()))
        if pinned is not None and not pinned & allowed:
            shown = ", ".join(f"Patient/{p}" for p in sorted(pinned)[:5])
            raise Forbidden(
                f"the criteria only match data of {shown}, which the token may not read"
            )

    def _patient_only(self) -> bool:
        """Does the token act for one patient only (their app, or patient/ scopes)?"""
        if str(self.who.fhir_user or "").startswith("Patient/"):
            return True
        return bool(self.scopes.rules) and all(r.context == "patient" for r in self.scopes.rules)

    def visible(self, document: Document) -> bool:
        query = self.search_filter(document["t"], "rs")
        return query is None or filter_eval.matches(document, query)

    def visible_resource(self, resource: Document) -> bool:
        return self.visible(self._document(resource))

    # -- building filters ---------------------------------------------------------------------

    def _build(self, resource_type: str, actions: str) -> Document | None:
        rules = {r for a in actions for r in self.scopes.for_action(resource_type, a)}
        filters: list[Document] = []
        for rule in sorted(rules, key=lambda r: r.text):
            rule_filter = self._rule_filter(rule, resource_type, actions)
            if rule_filter == {}:
                return None
            if rule_filter is not None:
                filters.append(rule_filter)
        if rules:
            filters += self._share_filters(resource_type, actions)
        if not filters:
            return dict(NOTHING)
        return filters[0] if len(filters) == 1 else {"$or": filters}

    def _share_filters(self, resource_type: str, actions: str) -> list[Document]:
        if self.shares is None:
            return []
        with access.unrestricted():
            rules = self.shares(resource_type)
        return share_filters(
            rules, resource_type, actions, self.compartment_types, self.search.criteria_filter
        )

    def _rule_filter(self, rule: ScopeRule, resource_type: str, actions: str) -> Document | None:
        parts: list[Document] = []
        patients = self.confinement.get(rule.context)
        if patients is not None:
            if resource_type in self.compartment_types:
                refs = [f"Patient/{p}" for p in patients]
                if not refs:
                    return None
                field_name = INDEX_PREFIX + COMPARTMENT_FIELD
                parts.append({field_name: refs[0] if len(refs) == 1 else {"$in": refs}})
                facing = self.patient_facing.get(resource_type)
                if facing and all(self.who.is_patient(p) for p in patients):
                    parts.append(
                        patient_facing_filter(
                            facing, patients, self.search.criteria_filter, resource_type
                        )
                    )
            elif set(actions) & WRITES:
                # Shared data: a confined token writes only what write_rules.py lets it own.
                kind = shared_kind(resource_type, self.who)
                if kind is None or (rule.context == "patient" and kind not in PATIENT_KINDS):
                    return None
                if kind == PATIENT_LINKED:
                    refs = [f"Patient/{p}" for p in patients]
                    if not refs:
                        return None
                    field_name = INDEX_PREFIX + "patient"
                    parts.append({field_name: refs[0] if len(refs) == 1 else {"$in": refs}})
        if rule.query:
            try:
                parts.append(self.search.criteria_filter(resource_type, rule.query))
            except FhirError:
                return None  # the restriction does not apply to this type: cover nothing
        return merge_filters(parts) if parts else {}

    def _document(self, resource: Document) -> Document:
        resource_type = str(resource.get("resourceType"))
        stored = StoredVersion(
            resource_type, str(resource.get("id", "")), 0, utc_now_ms(), False, resource
        )
        return current_document(stored, self.extractor.extract(resource))


def pinned_patients(query: SearchQuery, params: frozenset[str]) -> set[str] | None:
    """The patient ids a query can only match (clauses AND-ed, values OR-ed), from plain
    reference clauses on compartment parameters whose every value names a patient; None
    when no clause pins the patient."""
    pinned: set[str] | None = None
    for clause in query.clauses:
        if clause.chain is not None or clause.has is not None:
            continue
        names = params | {"patient"}
        if query.resource_type == "Patient" and clause.name == "_id":
            ids = set(clause.values)
        elif clause.type == "reference" and clause.name in names:
            if clause.modifier not in (None, "Patient"):
                continue
            found = [_patient_value(v) for v in clause.values]
            if not found or any(f is None for f in found):
                continue
            ids = {f for f in found if f}
        else:
            continue
        pinned = ids if pinned is None else pinned & ids
    return pinned


def _patient_value(value: str) -> str | None:
    if "/" not in value:
        return value  # a bare id: the matcher compares ids of any type; Patient is the one
    return patient_id(value)
