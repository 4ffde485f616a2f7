"""Access shared with someone outside a patient's care teams (pure declarations).

A care team opens a whole patient compartment to its members. Some access is narrower: a
specialist with an accepted referral reads only the records the referral's Consent lists
(fhirhub/coordination/referrals/). Domain packages register a `ShareSource` here; for each
token the policy (fhirhub/auth/policy.py) asks the sources once what the token's principal
is shared, and ORs each rule into the filter of its type and actions, so reads, searches,
includes, history and $everything all honour exactly the same shares.

A rule with `patient` "" is not confined to a compartment (messages between practitioners
about no patient); it then must have criteria.

A rule names a resource type, SMART action letters, the patient whose compartment it lies
in, and search criteria narrowing it further ("status=active", "_id=a,b"). A rule on a
type outside the Patient compartment must have criteria: a share never opens a whole type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from fhirhub.service.access import Principal


@dataclass(frozen=True)
class ShareRule:
    resource_type: str
    actions: frozenset[str]  # SMART v2 letters: "rs" to read and search, "c", "u"
    patient: str  # patient id whose compartment the rule is confined to ("": none)
    criteria: str = ""  # search criteria of resource_type ("" : the whole compartment type)


ShareSource = Callable[[Principal], list[ShareRule]]


@dataclass(frozen=True)
class Registered:
    source: ShareSource
    types: frozenset[str] | None  # the only types its rules name; None: any type


@dataclass
class ShareRegistry:
    entries: list[Registered] = field(default_factory=list)
    # For a patient's own token, a type lies in their compartment only through these
    # search parameters (Communication: sender, recipient; not a discussion about them).
    patient_facing: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def register(self, source: ShareSource, types: frozenset[str] | None = None) -> None:
        self.entries.append(Registered(source, types))

    def lookup(self, principal: Principal) -> ShareLookup:
        return ShareLookup(self.entries, principal)


class ShareLookup:
    """One token's shares (looked up per token, never across requests, so a referral that
    ends takes access away at once): each source is asked at most once, and only when a
    type it can share is filtered (a source that costs lookups stays idle otherwise)."""

    def __init__(self, entries: list[Registered], principal: Principal):
        self.entries = entries
        self.principal = principal
        self._found: dict[int, list[ShareRule]] = {}

    def __call__(self, resource_type: str) -> list[ShareRule]:
        if not self.principal.fhir_user or self.principal.admin:
            return []
        rules: list[ShareRule] = []
        for index, entry in enumerate(self.entries):
            if entry.types is not None and resource_type not in entry.types:
                continue
            if index not in self._found:
                self._found[index] = entry.source(self.principal)
            rules += [r for r in self._found[index] if r.resource_type == resource_type]
        return rules
