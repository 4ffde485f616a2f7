"""OAuth 2.0 errors (RFC 6749 section 5.2), rendered as JSON by the /auth blueprints."""

from __future__ import annotations

from typing import Any


class OAuthError(Exception):
    def __init__(
        self,
        error: str,
        description: str,
        status: int = 400,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.headers = headers or {}
        # For the audit log only, never sent: a replayed code or refresh token is a likely
        # theft (recorded as a serious failure) and names the grant it revoked.
        self.alarm = False
        self.context: dict[str, Any] = {}

    def alarming(self, **context: Any) -> OAuthError:
        self.alarm = True
        self.context.update(context)
        return self

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "error_description": self.description}


def invalid_request(description: str) -> OAuthError:
    return OAuthError("invalid_request", description)


def invalid_grant(description: str) -> OAuthError:
    return OAuthError("invalid_grant", description)


def invalid_client(description: str) -> OAuthError:
    # 401 with a challenge: RFC 6749 5.2 for failed client authentication.
    return OAuthError(
        "invalid_client", description, 401, {"WWW-Authenticate": 'Basic realm="fhirhub"'}
    )


def invalid_scope(description: str) -> OAuthError:
    return OAuthError("invalid_scope", description)
