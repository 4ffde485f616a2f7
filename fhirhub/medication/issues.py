"""Findings as FHIR (pure): contained DetectedIssues on the order, the override a prescriber
gives, and the OperationOutcome issues of a refusal or a warning.

The DetectedIssues are contained in the MedicationRequest and referenced from its
`detectedIssue`, so they are stored in the same version write as the order: there is no
moment at which the order exists without its issues or the reverse (all-or-nothing without
multi-document transactions, which FerretDB lacks).
"""

from __future__ import annotations

from typing import Any

from fhirhub.fhir.errors import BadRequest, Issue
from fhirhub.medication.rules import Finding

ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
EXT_BASE = "https://fhirhub.example/fhir/StructureDefinition/"
OVERRIDE_URL = EXT_BASE + "medication-safety-override"
PREFIX = "mds-"  # ids of the contained DetectedIssues this server writes


def override_reason(order: dict[str, Any]) -> str | None:
    """The prescriber's override: the extension's reason, or a mitigation on a DetectedIssue
    the order references that this server did not write. An override without a reason is
    a 400 (an unexplained override must never pass silently)."""
    for ext in order.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == OVERRIDE_URL:
            reason = str(ext.get("valueString") or "").strip()
            if not reason:
                raise BadRequest(
                    f"the {OVERRIDE_URL} extension needs a valueString with the reason",
                    [
                        Issue(
                            "required",
                            "override without a reason",
                            "error",
                            ("MedicationRequest.extension",),
                        )
                    ],
                )
            return reason
    contained = {c.get("id"): c for c in order.get("contained") or [] if isinstance(c, dict)}
    for ref in order.get("detectedIssue") or []:
        target = str((ref or {}).get("reference", ""))
        issue = contained.get(target[1:]) if target.startswith("#") else None
        if issue is None or str(issue.get("id", "")).startswith(PREFIX):
            continue
        for mitigation in issue.get("mitigation") or []:
            action = mitigation.get("action") or {}
            reason = str(action.get("text") or "").strip() or next(
                (str(c.get("display") or c.get("code")) for c in action.get("coding") or []), ""
            )
            if not reason:
                raise BadRequest("a DetectedIssue mitigation must say why (action.text)")
            return reason
    return None


def strip_previous(order: dict[str, Any]) -> None:
    """Remove the DetectedIssues an earlier version got from this server (an update is
    checked afresh)."""
    mine = {
        c.get("id") for c in order.get("contained") or [] if str(c.get("id", "")).startswith(PREFIX)
    }
    if not mine:
        return
    order["contained"] = [c for c in order["contained"] if c.get("id") not in mine]
    if not order["contained"]:
        del order["contained"]
    refs = [r for r in order.get("detectedIssue") or [] if r.get("reference", "")[1:] not in mine]
    if refs:
        order["detectedIssue"] = refs
    else:
        order.pop("detectedIssue", None)


def attach(
    order: dict[str, Any], findings: list[Finding], now: str, override: tuple[str, str] | None
) -> None:
    """Contain one DetectedIssue per finding in the order; `override` (reason, author) is
    recorded as a mitigation on the high-severity ones."""
    contained = list(order.get("contained") or [])
    refs = list(order.get("detectedIssue") or [])
    for n, finding in enumerate(findings, 1):
        issue: dict[str, Any] = {
            "resourceType": "DetectedIssue",
            "id": f"{PREFIX}{n}",
            "status": "final",
            "code": {
                "coding": [{"system": ACT_CODE, "code": finding.code, "display": finding.display}]
            },
            "severity": finding.severity,
            "identifiedDateTime": now,
            "implicated": [{"reference": "#"}] + [{"reference": r} for r in finding.implicated],
            "detail": finding.detail,
        }
        if order.get("subject"):
            issue["patient"] = order["subject"]
        if override is not None and finding.severity == "high":
            reason, author = override
            mitigation: dict[str, Any] = {
                "action": {
                    "coding": [
                        {
                            "system": ACT_CODE,
                            "code": "EMAUTH",
                            "display": "emergency authorization override",
                        }
                    ],
                    "text": reason,
                },
                "date": now,
            }
            if author:
                mitigation["author"] = {"reference": author}
            issue["mitigation"] = [mitigation]
        contained.append(issue)
        refs.append({"reference": f"#{PREFIX}{n}"})
    if findings:
        order["contained"] = contained
        order["detectedIssue"] = refs


def as_issue(finding: Finding, severity: str = "warning") -> Issue:
    return Issue(
        "business-rule",
        f"{finding.code} ({finding.severity}): {finding.detail}",
        severity,
        ("MedicationRequest",),
    )


def unchecked_issue(note: str) -> Issue:
    return Issue(
        "informational",
        f"could not check: {note}",
        "information",
        ("MedicationRequest.medication",),
    )
