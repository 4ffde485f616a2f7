"""The AccessPolicy for one access token: SMART scopes turned into database filters.

Each scope rule covering a type becomes a filter: the patient compartment it is confined
to (patient/ scopes: the launch patient; user/ scopes of a practitioner: the patients of
their active care teams; admins and system/ scopes: none), AND its v2 query restriction.
Several rules are OR-ed. The same filter serves searches (in the database), includes and
single resources (evaluated in memory by filter_eval, as subscriptions do), so what a
search returns and what a read allows cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fhirhub.auth.scopes import ScopeRule, Scopes
from fhirhub.fhir.errors import FhirError, Forbidden
from fhirhub.fhir.search.extract import COMPARTMENT_FIELD, Extractor
from fhirhub.service.search import SearchService
from fhirhub.storage import filter_eval
from fhirhub.storage.documents import INDEX_PREFIX, StoredVersion
from fhirhub.storage.query_translation import NOTHING, merge_filters
from fhirhub.storage.search_store import current_document
from fhirhub.storage.store import utc_now_ms

Document = dict[str, Any]
VERBS = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}


@dataclass
class TokenPolicy:
    scopes: Scopes
    # Patient ids each context is confined to; None: not confined.
    confinement: dict[str, list[str] | None]
    compartment_types: frozenset[str]
    search: SearchService
    extractor: Extractor
    _cache: dict[tuple[str, str], Document | None] = field(default_factory=dict)

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
        if not filters:
            return dict(NOTHING)
        return filters[0] if len(filters) == 1 else {"$or": filters}

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
            elif rule.context == "patient" and set(actions) - {"r", "s"}:
                return None  # a patient's app may read shared data, not change it
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
