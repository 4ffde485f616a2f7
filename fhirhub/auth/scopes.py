"""SMART App Launch scopes (v1 and v2) as pure rules: parsing, granting and narrowing.

A resource scope is `context/Type.permissions[?query]`: context is patient, user or system;
v1 permissions are read, write or *; v2 permissions are letters from "cruds" in that order,
optionally with a search query that narrows which resources the rule covers (v2 only).
Everything else (openid, fhirUser, launch, launch/patient, offline_access, ...) is a plain
scope compared as a string. Scope checks are never substring matches: a rule covers an
action only through this parsed form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CONTEXTS = ("patient", "user", "system")
ACTIONS = "cruds"
# v1 names map onto v2 letters; v1 "read" includes search, "write" excludes read.
V1_ACTIONS = {"read": "rs", "write": "cud", "*": "cruds"}
_V2 = re.compile(r"^c?r?u?d?s?$")
_RESOURCE_SCOPE = re.compile(r"^(patient|user|system)/([A-Za-z]+|\*)\.([A-Za-z*]+)(?:\?(.+))?$")

LAUNCH_SCOPES = frozenset({"launch", "launch/patient", "launch/encounter"})
IDENTITY_SCOPES = frozenset({"openid", "fhirUser", "profile"})
REFRESH_SCOPES = frozenset({"offline_access", "online_access"})
PLAIN_SCOPES = LAUNCH_SCOPES | IDENTITY_SCOPES | REFRESH_SCOPES


class ScopeError(ValueError):
    """A scope string that looks like a resource scope but is malformed."""


@dataclass(frozen=True)
class ScopeRule:
    context: str  # patient | user | system
    resource_type: str  # a type or "*"
    actions: frozenset[str]
    query: str  # v2 restriction ("category=laboratory"), "" when none
    text: str

    def covers(self, resource_type: str, action: str) -> bool:
        return action in self.actions and self.resource_type in ("*", resource_type)

    def subsumes(self, other: ScopeRule) -> bool:
        """Everything `other` allows, this rule allows too (used to bound grants)."""
        return (
            self.context == other.context
            and self.resource_type in ("*", other.resource_type)
            and other.actions <= self.actions
            and (not self.query or self.query == other.query)
        )


def parse_rule(text: str) -> ScopeRule | None:
    """The rule for a resource scope; None for plain scopes; ScopeError when malformed."""
    match = _RESOURCE_SCOPE.match(text)
    if not match:
        if "/" in text and text.split("/")[0] in CONTEXTS and text not in PLAIN_SCOPES:
            raise ScopeError(f"malformed resource scope {text!r}")
        return None
    context, resource_type, permissions, query = match.groups()
    if permissions in V1_ACTIONS:
        if query:
            raise ScopeError(f"v1 scope {text!r} cannot carry a query (use v2 permissions)")
        actions = V1_ACTIONS[permissions]
    elif permissions and _V2.match(permissions):
        actions = permissions
    else:
        raise ScopeError(f"scope {text!r}: permissions must be read, write, * or c?r?u?d?s?")
    return ScopeRule(context, resource_type, frozenset(actions), query or "", text)


@dataclass(frozen=True)
class Scopes:
    """A parsed, de-duplicated scope set in request order."""

    items: tuple[str, ...]
    rules: tuple[ScopeRule, ...]

    @classmethod
    def parse(cls, scope: str | None) -> Scopes:
        items: list[str] = []
        rules: list[ScopeRule] = []
        for text in (scope or "").split():
            if text in items:
                continue
            rule = parse_rule(text)
            items.append(text)
            if rule is not None:
                rules.append(rule)
        return cls(tuple(items), tuple(rules))

    def __contains__(self, text: object) -> bool:
        return text in self.items

    def __str__(self) -> str:
        return " ".join(self.items)

    def for_action(self, resource_type: str, action: str) -> list[ScopeRule]:
        return [r for r in self.rules if r.covers(resource_type, action)]

    def contexts(self) -> set[str]:
        return {r.context for r in self.rules}

    def granted_by(self, allowed: Scopes) -> Scopes:
        """The part of this (requested) set that `allowed` permits; the rest is dropped,
        which RFC 6749 section 3.3 allows (the response then lists the scope issued)."""
        return Scopes.parse(" ".join(s for s in self.items if allowed.permits(s)))

    def permits(self, text: str) -> bool:
        rule = parse_rule(text)
        if rule is None:
            return text in self.items
        return any(mine.subsumes(rule) for mine in self.rules)

    def within(self, granted: Scopes) -> bool:
        """Is every scope of this set already covered by `granted` (refresh narrowing)?"""
        return self.granted_by(granted).items == self.items

    def without_types(self, removed: set[str]) -> Scopes:
        """Drop the resource scopes naming these types (a user unticked them on consent)."""
        kept = [
            s
            for s in self.items
            if (rule := parse_rule(s)) is None or rule.resource_type not in removed
        ]
        return Scopes.parse(" ".join(kept))


def resource_types_named(scopes: Scopes) -> list[str]:
    """Resource types the scope set names, in order (for the consent page)."""
    seen: list[str] = []
    for rule in scopes.rules:
        if rule.resource_type not in seen:
            seen.append(rule.resource_type)
    return seen
