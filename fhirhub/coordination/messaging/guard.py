"""Write guards for secure messaging: every Communication a client writes, and Binary.

Refused before anything is written (422 unless said otherwise):
- recipients that do not exist, of a type that cannot receive, or not entitled to a
  message about its patient (someone outside the patient's care teams and open referrals);
- under a token, a sender other than the token's own person (403), edits by anyone but
  the sender (403) and read-status entries written by hand (only $mark-read writes them);
- replies and thread parts naming messages that do not exist or are about another patient;
- attachments of a type off the allow-list, over the size limit, or whose hash does not
  match, inline or as a Binary on this server (Binary itself: type and size).
The channels' own records of notices sent (fhirhub/channels/records.py) are not messages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fhirhub.auth.careteams import care_team_patients
from fhirhub.coordination.messaging import rules
from fhirhub.coordination.referrals.access import Finder, principal_references
from fhirhub.coordination.referrals.rules import FULFILL, TASK_CODES, reference
from fhirhub.fhir.errors import Forbidden, Unprocessable
from fhirhub.service import access
from fhirhub.service.write_guards import NO_TICKET, Ticket
from fhirhub.storage.documents import StoredVersion, live_resource

Resource = dict[str, Any]
Read = Callable[[str, str], "Resource | None"]


def own_references(search: Finder, principal: access.Principal) -> list[str]:
    fhir_user = str(principal.fhir_user or "")
    if fhir_user.startswith(("Practitioner/", "PractitionerRole/")):
        return principal_references(search, fhir_user)
    if fhir_user:
        return [fhir_user]
    return [f"Patient/{principal.patient}"] if principal.patient else []


class CommunicationGuard:
    def __init__(self, read: Read, search: Finder, limit: int = rules.MAX_BYTES):
        self.read = read
        self.search = search
        self.limit = limit

    def before(
        self,
        resource_type: str,
        resource_id: str,
        new: Resource | None,
        current: StoredVersion | None,
    ) -> Ticket:
        old = live_resource(current)
        if (new is not None and rules.is_channel_record(new)) or (
            new is None and old is not None and rules.is_channel_record(old)
        ):
            return NO_TICKET
        self._check_writer(old, new)
        if new is None:
            return NO_TICKET
        problems = rules.recipient_problems(new)
        problems += self.recipients(new) if not problems else []
        problems += self._thread(new)
        problems += self._attachments(new)
        if problems:
            raise Unprocessable("; ".join(problems), code="business-rule")
        return NO_TICKET

    def _check_writer(self, old: Resource | None, new: Resource | None) -> None:
        policy = access.active()
        if policy is None or policy.unrestricted():
            return
        with access.unrestricted():
            own = own_references(self.search, policy.principal())
        if old is not None and reference(old.get("sender")) not in own:
            raise Forbidden("only the sender may change or delete a message")
        if new is not None and reference(new.get("sender")) not in own:
            shown = ", ".join(own) or "none"
            raise Forbidden(
                f"Communication.sender must be the token's own person ({shown}); "
                "a message cannot be sent in someone else's name"
            )
        if new is not None and rules.read_entries(new) != rules.read_entries(old):
            raise Forbidden("read status is recorded by Communication/$mark-read only")

    def recipients(self, message: Resource) -> list[str]:
        subject = reference(message.get("subject"))
        patient = subject.split("/")[1] if subject and subject.startswith("Patient/") else None
        problems = []
        for ref in rules.recipients(message):
            kind, rid = ref.split("/")
            found = self.read(kind, rid)
            if found is None:
                problems.append(f"recipient {ref} does not exist")
            elif patient is not None and not self._entitled(kind, ref, found, patient):
                problems.append(
                    f"{ref} may not receive messages about Patient/{patient}: not on the "
                    "patient's care team, an open referral or the patient's own people"
                )
        return problems

    def _entitled(self, kind: str, ref: str, found: Resource, patient: str) -> bool:
        subject = f"Patient/{patient}"
        with access.unrestricted():
            if kind == "Patient":
                return ref == subject
            if kind == "RelatedPerson":
                return reference(found.get("patient")) == subject
            if kind == "CareTeam":
                return (
                    reference(found.get("subject")) == subject and found.get("status") == "active"
                )
            if kind == "Organization":
                return self._organization(ref, subject)
            if patient in care_team_patients(self.search, ref):
                return True
            tasks = self.search.find_resources(
                "Task",
                f"owner={ref}&patient={subject}&code={TASK_CODES}|{FULFILL}"
                "&status=accepted,in-progress",
                1,
            )
            return bool(tasks)

    def _organization(self, ref: str, subject: str) -> bool:
        patient = self.read("Patient", subject.split("/")[1]) or {}
        if reference(patient.get("managingOrganization")) == ref:
            return True
        teams = self.search.find_resources("CareTeam", f"subject={subject}&status=active", 100)
        return any(
            reference(t.get("managingOrganization", [None])[0]) == ref
            or any(reference(p.get("member")) == ref for p in t.get("participant") or [])
            for t in teams
        )

    def _thread(self, message: Resource) -> list[str]:
        problems = []
        for name in ("partOf", "inResponseTo"):
            for item in message.get(name) or []:
                ref = reference(item) or ""
                if not ref.startswith("Communication/"):
                    continue
                earlier = self.read("Communication", ref.split("/")[1])
                if earlier is None:
                    problems.append(f"Communication.{name} {ref} does not exist")
                elif reference(earlier.get("subject")) != reference(message.get("subject")):
                    problems.append(f"Communication.{name} {ref} is about another subject")
        return problems

    def _attachments(self, message: Resource) -> list[str]:
        problems = []
        for index, attachment in enumerate(rules.attachments(message)):
            what = f"attachment {index + 1}"
            data = rules.decoded(attachment.get("data"))
            url = str(attachment.get("url") or "")
            if data is None and url:
                local = url.split("/fhir/")[-1] if "/fhir/" in url else url
                binary = (
                    self.read("Binary", local.split("/")[1])
                    if local.startswith("Binary/") and local.count("/") == 1
                    else None
                )
                if binary is None:
                    problems.append(f"{what}: {url} is not a Binary on this server")
                    continue
                data = rules.decoded(binary.get("data")) or b""
            problems += rules.content_problems(
                attachment.get("contentType"), data, attachment.get("hash"), what, self.limit
            )
        return problems


class BinaryGuard:
    def __init__(self, limit: int = rules.MAX_BYTES):
        self.limit = limit

    def before(
        self,
        resource_type: str,
        resource_id: str,
        new: Resource | None,
        current: StoredVersion | None,
    ) -> Ticket:
        if new is None:
            return NO_TICKET
        problems = rules.content_problems(
            new.get("contentType"), rules.decoded(new.get("data")), None, "Binary", self.limit
        )
        if problems:
            raise Unprocessable("; ".join(problems), code="business-rule")
        return NO_TICKET
