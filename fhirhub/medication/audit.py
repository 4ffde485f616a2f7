"""Overrides of refused medication safety issues, recorded in the audit log as AuditEvents
(who, why, when, which patient), next to the DetectedIssue mitigation stored in the order."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fhirhub.auth.audit import AuditLog

DCM = "http://dicom.nema.org/resources/ontology/DCM"
LOCAL = "https://fhirhub.example/fhir/CodeSystem/audit-event-subtype"


def override_recorder(audit: Callable[[], AuditLog]) -> Callable[[dict[str, Any]], None]:
    def record(event: dict[str, Any]) -> None:
        from fhirhub.auth.audit import AuditLog

        moment = datetime.now(UTC)
        event_id = AuditLog.new_id(moment)
        who = str(event["who"])
        reference = who if "/" in who else ""
        resource = {
            "resourceType": "AuditEvent",
            "id": event_id,
            "type": {"system": DCM, "code": "110113", "display": "Security Alert"},
            "subtype": [
                {
                    "system": LOCAL,
                    "code": "medication-safety-override",
                    "display": "Medication safety issue overridden",
                }
            ],
            "action": "C",
            "recorded": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "outcome": "0",
            "outcomeDesc": f"override: {event['reason']}; " + "; ".join(event["issues"])[:900],
            "agent": [
                {
                    "who": {"reference": reference} if reference else {"display": who},
                    "requestor": True,
                }
            ],
            "source": {"observer": {"display": "fhirhub medication safety"}},
            "entity": [{"what": {"reference": event["patient"]}}] if event.get("patient") else [],
        }
        audit().record(
            {
                "_id": event_id,
                "ts": moment,
                "k": "medication",
                "sub": "medication-safety-override",
                "who": [who],
                "entity": [event["patient"]] if event.get("patient") else [],
                "res": resource,
            }
        )

    return record
