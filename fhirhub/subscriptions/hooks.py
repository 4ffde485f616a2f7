"""Write-time rules for Subscription and notification Endpoints (run after validation).

Subscription: criteria must parse with the search engine, channel must be rest-hook with an
allowed http(s) endpoint or websocket (no endpoint: the client binds to the server's socket),
payload JSON or absent, headers "Name: value"; a `requested` Subscription is activated here,
so clients never see it stuck in requested. Rest-hook Subscriptions and Endpoints get a
signing secret when they have none; an update that omits it (or sends it masked, as
reads show it: fhirhub/subscriptions/secrets.py) keeps the old one (a PUT of what the
client knew must not silently rotate the key); masked header values are kept likewise.

A Subscription records its owner (subscription-owner extension), set by the server from
the token that creates it and kept by every later write, so a client can neither forge
nor move it; its criteria must be able to match something the owner may read.
A change of address is marked on the new version likewise (address_change.py: audited,
verified by a ping before use), and masked header values are restored only for the same
address, so a stored credential never follows a new one.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from fhirhub.fhir.errors import FhirError, Issue, Unprocessable
from fhirhub.fhir.search.query import SearchQuery
from fhirhub.service import access
from fhirhub.service.resources import WriteHook
from fhirhub.storage.store import utc_now_ms
from fhirhub.subscriptions.address_change import OPERATOR, destination, mark
from fhirhub.subscriptions.address_policy import AddressNotAllowed, AddressPolicy
from fhirhub.subscriptions.model import (
    CHANNEL_TYPES,
    CONTENT_MODES,
    JSON_MIMES,
    NOTIFICATION_CONTENT,
    SIGNING_SECRET,
    SUBSCRIPTION_OWNER,
    WEBSOCKET,
    extension_value,
    owner_extension,
    wants_notifications,
    with_owner,
)
from fhirhub.subscriptions.payloads import parse_header_line
from fhirhub.subscriptions.routing import NotificationSearch
from fhirhub.subscriptions.secrets import MASK, restore_headers, reveal

# (type, id) -> the stored current resource, or None
CurrentReader = Callable[[str, str], dict[str, Any] | None]
MIN_SECRET_LENGTH = 16


def _reject(expression: str, message: str) -> Unprocessable:
    return Unprocessable(message, [Issue("business-rule", message, expression=(expression,))])


class SubscriptionHook:
    def __init__(self, search: NotificationSearch, policy: AddressPolicy, current: CurrentReader):
        self.search = search
        self.policy = policy
        self.current = current

    def __call__(self, resource: dict[str, Any]) -> None:
        previous = _previous(resource, self.current)
        self._set_owner(resource, previous)
        _mark_address(resource, previous)
        channel = resource.get("channel")
        if isinstance(channel, dict) and channel.get("header"):
            previous_channel = _same_destination(resource, previous).get("channel") or {}
            headers = _restored(channel["header"], previous_channel.get("header"))
            resource["channel"] = {**channel, "header": headers}
        if resource.get("status") in ("off", "error"):
            # Nothing is delivered to it, so switching one off (the worker does, after a
            # dead letter) must work even if its address or criteria are no longer usable.
            ensure_secret(resource, self.current)
            return
        criteria = resource.get("criteria")
        if not isinstance(criteria, str) or not criteria.strip():
            raise _reject("Subscription.criteria", "Subscription.criteria is required")
        try:
            query = self.search.validate_criteria(criteria)
        except FhirError as error:
            raise _reject(
                "Subscription.criteria", f"Subscription.criteria is not usable: {error.diagnostics}"
            ) from None
        policy = access.active()
        if policy is not None and isinstance(query, SearchQuery):
            policy.check_criteria(query)  # 403: only data the token may not read
        channel = resource.get("channel") or {}
        if channel.get("type") not in CHANNEL_TYPES:
            raise _reject(
                "Subscription.channel.type",
                f"channel type {channel.get('type')!r} is not supported; use "
                + " or ".join(CHANNEL_TYPES),
            )
        websocket = channel.get("type") == WEBSOCKET
        if not websocket:
            try:
                self.policy.check_url(str(channel.get("endpoint") or ""))
            except AddressNotAllowed as error:
                raise _reject(
                    "Subscription.channel.endpoint", f"channel.endpoint: {error}"
                ) from None
        payload = channel.get("payload")
        if payload is not None and payload not in JSON_MIMES:
            raise _reject(
                "Subscription.channel.payload",
                f"payload {payload!r} is not supported; use application/fhir+json or omit it",
            )
        check_headers(channel.get("header"), "Subscription.channel.header")
        if resource.get("status") == "requested":
            resource["status"] = "active"
            resource.pop("error", None)
        if not websocket:  # a ping over the client's own socket has nothing to sign
            ensure_secret(resource, self.current)

    @staticmethod
    def _set_owner(resource: dict[str, Any], previous: dict[str, Any] | None) -> None:
        """The owner is the stored version's; for a new Subscription the writing token's.
        Written without a policy (CLI, imports, auth off) a new one keeps what it carries."""
        stored = _owner_ext(previous)
        policy = access.active()
        if stored is not None:
            with_owner(resource, stored)
        elif policy is not None:
            with_owner(resource, owner_extension(policy.principal()))


def _owner_ext(resource: dict[str, Any] | None) -> dict[str, Any] | None:
    for ext in (resource or {}).get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == SUBSCRIPTION_OWNER:
            return ext
    return None


def _mark_address(resource: dict[str, Any], previous: dict[str, Any] | None) -> None:
    policy = access.active()
    by = policy.principal().key if policy is not None else OPERATOR
    mark(resource, previous, by, utc_now_ms())


def _same_destination(resource: dict[str, Any], previous: dict[str, Any] | None) -> Any:
    """The stored version, when it has the same address: masked header values are taken
    from it only then, so a stored credential never follows a change of address."""
    if previous is None or destination(previous) != destination(resource):
        return {}
    return previous


def _previous(resource: dict[str, Any], current: CurrentReader) -> dict[str, Any] | None:
    return current(resource["resourceType"], str(resource["id"])) if resource.get("id") else None


def _restored(headers: Any, previous: Any) -> Any:
    restored, missing = restore_headers(headers, previous)
    if missing is not None:
        raise _reject(
            "header", f"header {missing!r} is sent masked but the stored version has no value"
        )
    return restored


def endpoint_hook(current: CurrentReader) -> WriteHook:
    def hook(resource: dict[str, Any]) -> None:
        previous = _previous(resource, current)
        _mark_address(resource, previous)  # every Endpoint: a client can never forge one
        if not wants_notifications(resource):
            return
        content = extension_value(resource, NOTIFICATION_CONTENT, "valueCode")
        if content is not None and content not in CONTENT_MODES:
            raise _reject(
                "Endpoint.extension",
                f"notification-content must be one of {', '.join(CONTENT_MODES)}",
            )
        if resource.get("header"):
            same = _same_destination(resource, previous)
            resource["header"] = _restored(resource["header"], same.get("header"))
        check_headers(resource.get("header"), "Endpoint.header")
        ensure_secret(resource, current)

    return hook


def check_headers(headers: Any, expression: str) -> None:
    for line in headers or []:
        if not isinstance(line, str) or parse_header_line(line) is None:
            raise _reject(expression, f"{expression} {str(line)[:60]!r} is not 'Name: value'")


def ensure_secret(resource: dict[str, Any], current: CurrentReader) -> None:
    given = extension_value(resource, SIGNING_SECRET, "valueString")
    if given == MASK:
        given = None  # as read back: keep the stored one (below)
    if given is not None:
        if not isinstance(given, str) or len(given) < MIN_SECRET_LENGTH:
            raise _reject(
                f"{resource['resourceType']}.extension",
                f"the signing secret must be at least {MIN_SECRET_LENGTH} characters",
            )
        return
    previous = (
        current(resource["resourceType"], str(resource["id"])) if resource.get("id") else None
    )
    # Kept only for the same destination: a create that happens to name an existing id
    # must not inherit someone else's key.
    same = previous is not None and destination(previous) == destination(resource)
    secret = extension_value(previous, SIGNING_SECRET, "valueString") if previous and same else None
    if not secret:
        secret = secrets.token_hex(32)
        reveal(secret)  # shown once, in the response to this write
    extensions = [e for e in resource.get("extension") or [] if e.get("url") != SIGNING_SECRET]
    extensions.append({"url": SIGNING_SECRET, "valueString": secret})
    resource["extension"] = extensions


def write_hooks(
    search: NotificationSearch, policy: AddressPolicy, current: CurrentReader
) -> dict[str, WriteHook]:
    return {
        "Subscription": SubscriptionHook(search, policy, current),
        "Endpoint": endpoint_hook(current),
    }
