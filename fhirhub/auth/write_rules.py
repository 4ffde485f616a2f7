"""Who may write what beyond compartments: shared (non-patient) types and owned resources.

Patient-compartment types are confined by compartment filters (fhirhub/auth/policy.py);
access-granting types also need their subject's care to be managed
(fhirhub/service/access_grants.py). Everything outside the Patient compartment is shared:
directory data, definitions, subscriptions. For a confined token (a practitioner's or a
patient's user/ scopes, any patient/ scope) writes to shared types are denied unless the
table below names the type, and then only for what the principal owns:

| type | confined tokens may write |
|---|---|
| Practitioner | their own (the fhirUser, or the practitioner of the fhirUser role); no delete |
| PractitionerRole | their own (practitioner = themselves); endpoints it gains must be theirs |
| Endpoint | one whose every referrer is their own PractitionerRole (a new one: none yet) |
| Subscription | their own (its owner, recorded when it was created) |
| Task, Device | one whose `patient` is within the token's patients (old and new version) |
| anything else | nothing: admins and unrestricted system/ tokens only |

Unconfined rules (admins, system/ scopes) write whatever their scopes allow.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fhirhub.fhir.errors import Forbidden
from fhirhub.service import access
from fhirhub.service.access_grants import AccessGrant, GrantRegistry
from fhirhub.subscriptions.model import owner_key

if TYPE_CHECKING:
    from fhirhub.auth.policy import TokenPolicy

Document = dict[str, Any]

OWN_PRACTITIONER = "own practitioner"
OWN_ROLE = "own role"
OWN_ENDPOINT = "own endpoint"
OWN_SUBSCRIPTION = "own subscription"
PATIENT_LINKED = "patient linked"
SHARED_WRITES: dict[str, str] = {
    "Practitioner": OWN_PRACTITIONER,
    "PractitionerRole": OWN_ROLE,
    "Endpoint": OWN_ENDPOINT,
    "Subscription": OWN_SUBSCRIPTION,
    "Task": PATIENT_LINKED,
    "Device": PATIENT_LINKED,
}
# Kinds open to principals that are not practitioners (patients, related persons, apps).
ANYONE = frozenset({OWN_SUBSCRIPTION, PATIENT_LINKED})
# Resources whose `endpoint` makes an Endpoint theirs (routing reads the first two).
ENDPOINT_HOLDERS = ("PractitionerRole", "Organization", "HealthcareService", "Location")
MAX_LOOKUP = 1000


def shared_kind(resource_type: str, principal: access.Principal) -> str | None:
    """The rule a confined token's write to this shared type follows; None: denied."""
    kind = SHARED_WRITES.get(resource_type)
    if kind is None or (kind not in ANYONE and not _practitioner(principal)):
        return None
    return kind


def _practitioner(principal: access.Principal) -> bool:
    return str(principal.fhir_user or "").startswith(("Practitioner/", "PractitionerRole/"))


def local(reference: Any, base: str) -> str | None:
    """ "Type/id" of a reference to this server, else None."""
    if not isinstance(reference, str):
        return None
    if base and reference.startswith(base + "/"):
        reference = reference[len(base) + 1 :]
    parts = reference.split("/_history")[0].split("/")
    return "/".join(parts) if len(parts) == 2 and all(parts) else None


class WriteRules:
    def __init__(self, policy: TokenPolicy, grants: GrantRegistry, base: str):
        self.policy = policy
        self.grants = grants
        self.base = base
        self._practitioner: tuple[str | None] | None = None  # looked up once

    def check(
        self, action: str, resource_type: str, old: Document | None, new: Document | None
    ) -> None:
        grant = self.grants.get(resource_type)
        if grant is not None:
            self._check_grant(grant, action, old, new)
        if resource_type in self.policy.compartment_types:
            return
        if not self.policy.confined_only(resource_type, action):
            return
        kind = shared_kind(resource_type, self.policy.principal())
        if kind is None:  # the filters already refuse these; stated again for clarity
            raise self._refused(resource_type, "is directory or shared data")
        if kind == OWN_PRACTITIONER:
            self._own_practitioner(action, old, new)
        elif kind == OWN_ROLE:
            self._own_role(old, new)
        elif kind == OWN_ENDPOINT:
            self._own_endpoint(old, new)
        elif kind == OWN_SUBSCRIPTION:
            for version in (old, new):
                if version is not None and not self.owns_subscription(version):
                    raise self._refused("Subscription", "belongs to someone else")
        # PATIENT_LINKED is a filter on the type's `patient` (TokenPolicy._rule_filter).

    # -- access-granting types ----------------------------------------------------------------

    def _check_grant(
        self, grant: AccessGrant, action: str, old: Document | None, new: Document | None
    ) -> None:
        subjects = set(grant.subjects(old) if old else []) | set(grant.subjects(new) if new else [])
        unmanaged = sorted(p for p in subjects if not self.policy.manages(grant, action, p))
        if not unmanaged:
            return
        principal = self.policy.principal()
        narrowing = not grant.widens(old, new)
        if narrowing and all(principal.is_patient(p) for p in unmanaged):
            return  # a patient may take access away from their own teams, never add it
        if narrowing and grant.keep_open and old is not None:
            return
        who = ", ".join(f"Patient/{p}" for p in unmanaged)
        raise Forbidden(
            f"{grant.resource_type} opens {who}'s record to others: only a token that manages "
            "that patient's care may write it (unrestricted access, or a current member of "
            "one of the patient's active CareTeams with the manager role)"
        )

    # -- owned shared resources ---------------------------------------------------------------

    def _own_practitioner(self, action: str, old: Document | None, new: Document | None) -> None:
        own = self.practitioner()
        if action == "d":
            raise self._refused("Practitioner", "is directory data: only admins delete it")
        for version in (old, new):
            if version is not None and f"Practitioner/{version.get('id')}" != own:
                raise self._refused("Practitioner", "is not the token's own")

    def _own_role(self, old: Document | None, new: Document | None) -> None:
        for version in (old, new):
            if version is not None and not self._is_own_role(version):
                raise self._refused("PractitionerRole", "is not the token's own")
        if new is None:
            return
        before = set(self._endpoints(old)) if old else set()
        for endpoint in self._endpoints(new):
            if endpoint not in before and not self._endpoint_free_or_own(endpoint, fresh=True):
                raise self._refused(
                    "PractitionerRole",
                    f"would take over {endpoint}, which another resource's owner holds",
                )

    def _own_endpoint(self, old: Document | None, new: Document | None) -> None:
        version = old or new
        if version is None:
            return
        endpoint = f"Endpoint/{version.get('id')}"
        if not self._endpoint_free_or_own(endpoint, fresh=old is None):
            raise self._refused(
                "Endpoint", "is not the token's own (every resource naming it must be)"
            )

    def owns(self, resource_type: str, resource: Document) -> bool:
        if resource_type == "Subscription":
            return self.owns_subscription(resource)
        if resource_type == "Endpoint":
            return self._endpoint_free_or_own(f"Endpoint/{resource.get('id')}", fresh=False)
        if resource_type == "PractitionerRole":
            return self._is_own_role(resource)
        if resource_type == "Practitioner":
            return f"Practitioner/{resource.get('id')}" == self.practitioner()
        return False

    def owns_subscription(self, resource: Document) -> bool:
        return owner_key(resource) == self.policy.principal().key

    def practitioner(self) -> str | None:
        """The principal's own Practitioner reference (through their role for a role user)."""
        if self._practitioner is None:
            fhir_user = str(self.policy.principal().fhir_user or "")
            found: str | None = None
            if fhir_user.startswith("Practitioner/"):
                found = fhir_user
            elif fhir_user.startswith("PractitionerRole/"):
                role = self._find("PractitionerRole", f"_id={fhir_user.split('/', 1)[1]}")
                found = (
                    local((role[0].get("practitioner") or {}).get("reference"), self.base)
                    if role
                    else None
                )
            self._practitioner = (found,)
        return self._practitioner[0]

    def _is_own_role(self, role: Document) -> bool:
        fhir_user = self.policy.principal().fhir_user
        if fhir_user == f"PractitionerRole/{role.get('id')}":
            return True
        own = self.practitioner()
        practitioner = local((role.get("practitioner") or {}).get("reference"), self.base)
        return own is not None and practitioner == own

    def _endpoints(self, holder: Document | None) -> list[str]:
        refs = [
            local(e.get("reference"), self.base)
            for e in (holder or {}).get("endpoint") or []
            if isinstance(e, dict)
        ]
        return [r for r in refs if r and r.startswith("Endpoint/")]

    def _endpoint_free_or_own(self, endpoint: str, fresh: bool) -> bool:
        """Every resource naming the Endpoint is one of the principal's own roles; with
        `fresh`, an Endpoint nobody names yet counts as the principal's to take."""
        holders = [(t, h) for t in ENDPOINT_HOLDERS for h in self._find(t, f"endpoint={endpoint}")]
        if not holders:
            return fresh
        return all(t == "PractitionerRole" and self._is_own_role(h) for t, h in holders)

    def _find(self, resource_type: str, query: str) -> list[Document]:
        with access.unrestricted():
            return self.policy.search.find_resources(resource_type, query, MAX_LOOKUP)

    @staticmethod
    def _refused(resource_type: str, why: str) -> Forbidden:
        return Forbidden(
            f"{resource_type} {why}: with a confined token (a practitioner's or patient's) "
            "only one's own Practitioner, PractitionerRole, Endpoint and Subscription may be "
            "written; directory data needs an admin (see README, SMART: who may write what)"
        )
