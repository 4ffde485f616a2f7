"""The one error tree. The API layer maps every FhirError to an OperationOutcome in one place.

Each error carries its HTTP status and one or more issues (severity, code, diagnostics,
expression) so validation can report every problem at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Issue:
    code: str  # OperationOutcome.issue.code (http://hl7.org/fhir/issue-type)
    diagnostics: str
    severity: str = "error"
    expression: tuple[str, ...] = ()

    def to_fhir(self) -> dict[str, object]:
        out: dict[str, object] = {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": self.diagnostics,
        }
        if self.expression:
            out["expression"] = list(self.expression)
        return out


class HubError(Exception):
    """Base for errors that are not about a FHIR request (configuration, setup)."""


class ConfigurationError(HubError):
    """Bad environment or missing prerequisite; reported as one actionable line."""


@dataclass
class FhirError(Exception):
    diagnostics: str
    status: int = 400
    code: str = "invalid"
    issues: list[Issue] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.diagnostics)
        if not self.issues:
            self.issues = [Issue(code=self.code, diagnostics=self.diagnostics)]


class BadRequest(FhirError):
    def __init__(self, diagnostics: str, issues: list[Issue] | None = None, code: str = "invalid"):
        super().__init__(diagnostics, 400, code, issues or [])


class Unprocessable(FhirError):
    """422: syntactically fine but fails validation rules or business rules."""

    def __init__(
        self, diagnostics: str, issues: list[Issue] | None = None, code: str = "processing"
    ):
        super().__init__(diagnostics, 422, code, issues or [])


class NotFound(FhirError):
    def __init__(self, diagnostics: str):
        super().__init__(diagnostics, 404, "not-found")


class Gone(FhirError):
    def __init__(self, diagnostics: str, headers: dict[str, str] | None = None):
        super().__init__(diagnostics, 410, "deleted", headers=headers or {})


class MethodNotAllowed(FhirError):
    def __init__(self, diagnostics: str, allowed: list[str]):
        super().__init__(diagnostics, 405, "not-supported", headers={"Allow": ", ".join(allowed)})


class NotAcceptable(FhirError):
    def __init__(self, diagnostics: str):
        super().__init__(diagnostics, 406, "not-supported")


class Conflict(FhirError):
    def __init__(self, diagnostics: str):
        super().__init__(diagnostics, 409, "conflict")


class PreconditionFailed(FhirError):
    def __init__(self, diagnostics: str):
        super().__init__(diagnostics, 412, "conflict")


class PayloadTooLarge(FhirError):
    def __init__(self, diagnostics: str):
        super().__init__(diagnostics, 413, "too-costly")


class TooCostly(FhirError):
    """A query the database could not answer within its time budget."""

    def __init__(self, diagnostics: str):
        super().__init__(diagnostics, 400, "too-costly")


class UnsupportedMediaType(FhirError):
    def __init__(self, diagnostics: str):
        super().__init__(diagnostics, 415, "not-supported")


class ServiceUnavailable(FhirError):
    def __init__(self, diagnostics: str):
        super().__init__(diagnostics, 503, "transient")


class Unauthorized(FhirError):
    """401: no valid access token; WWW-Authenticate tells the client what to do (RFC 6750)."""

    def __init__(self, diagnostics: str, error: str | None = "invalid_token"):
        challenge = 'Bearer realm="fhirhub"'
        if error:
            description = diagnostics.replace('"', "'")
            challenge += f', error="{error}", error_description="{description}"'
        super().__init__(diagnostics, 401, "login", headers={"WWW-Authenticate": challenge})


class Forbidden(FhirError):
    """403: the token is valid but its scopes or context do not allow this."""

    def __init__(self, diagnostics: str):
        challenge = 'Bearer realm="fhirhub", error="insufficient_scope"'
        super().__init__(diagnostics, 403, "forbidden", headers={"WWW-Authenticate": challenge})
