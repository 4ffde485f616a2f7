"""The one enforcement point for /fhir: authenticate, install the token's policy, audit.

Services then check every read, write and search against the installed policy (see
fhirhub/service/access.py); views without such a service call are listed here with their
own requirement, and any endpoint not listed needs a token with unrestricted access, so a
new endpoint is closed until someone decides otherwise.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, request

from fhirhub.api.audit.bundle import entry_events
from fhirhub.api.audit.search import audit_event
from fhirhub.api.fhir import operations
from fhirhub.api.fhir.requests import current_globals, current_request, hub
from fhirhub.auth.policy import TokenPolicy
from fhirhub.config import Settings
from fhirhub.fhir.errors import ConfigurationError, Forbidden
from fhirhub.service import access, bundle_entries

log = logging.getLogger(__name__)

FHIR_PREFIX = "/fhir"
PUBLIC = {"metadata.metadata", "smart.smart_configuration_view", "health.healthz"}
# Enforced inside the services (ResourceService, SearchService, history/everything hooks).
SERVICE_ENFORCED = {
    "rest.read",
    "rest.vread",
    "rest.create",
    "rest.update",
    "rest.conditional_update",
    "rest.patch",
    "rest.delete",
    "rest.conditional_delete",
    "rest.batch_or_transaction",
    "rest.instance_history",
    "rest.type_history",
    "rest.system_history",
    "search.search_type",
    "search.search_post",
    "search.search_compartment",
    "search.patient_everything",
    "search.all_patients_everything",
    "search.encounter_everything",
    "auth_audit.search_audit_events",
}
BUNDLE_ENDPOINT = "rest.batch_or_transaction"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
# Browser apps call the API and the token endpoints cross-origin with bearer tokens (no
# cookies), so any origin may: the token, not the origin, is the credential.
CORS_PATHS = ("/fhir", "/auth/token", "/auth/introspect", "/auth/revoke", "/auth/jwks")
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, Accept, Prefer, If-Match, "
    "If-None-Match, If-None-Exist, If-Modified-Since",
    "Access-Control-Expose-Headers": "Location, Content-Location, ETag, Last-Modified, "
    "WWW-Authenticate",
}
_CORS_ITEMS = tuple((key, key.lower(), value) for key, value in CORS.items())


def check_startup(settings: Settings) -> None:
    if settings.auth:
        return
    if settings.host not in LOOPBACK and not settings.host.startswith("127."):
        raise ConfigurationError(
            f"FHIRHUB_AUTH=off is only allowed when listening on loopback, not {settings.host}"
        )
    log.warning(
        "!!! FHIRHUB_AUTH=off: the FHIR API at %s accepts requests WITHOUT any "
        "authorization. Use this only for local development. !!!",
        settings.fhir_base,
    )


def install(app: Flask, settings: Settings) -> None:
    check_startup(settings)
    if not settings.auth:
        return

    @app.before_request
    def _authenticate() -> None:
        req = current_request()
        endpoint = req.endpoint
        if not req.path.startswith(FHIR_PREFIX) or endpoint in PUBLIC:
            return
        if req.method == "OPTIONS":
            return
        context = current_globals()
        if endpoint == BUNDLE_ENDPOINT:
            context.bundle_entries, context.bundle_observer = bundle_entries.observe_entries()
        the_hub = hub()
        record = the_hub.auth.authenticate(req.headers.get("Authorization"))
        context.auth_record = record
        policy = the_hub.auth.policy(record)
        context.access_token = access.install(policy)
        _endpoint_rule(policy, endpoint or "", req.view_args or {})

    @app.teardown_request
    def _uninstall(_error: BaseException | None) -> None:
        context = current_globals()
        token = context.pop("access_token", None)
        if token is not None:
            access.uninstall(token)
        observer = context.pop("bundle_observer", None)
        if observer is not None:
            bundle_entries.stop_observing(observer)

    @app.after_request
    def _audit(response: Response) -> Response:
        req = current_request()
        path = req.path
        if path.startswith(CORS_PATHS):
            _add_cors(response)
        audited = path.startswith(FHIR_PREFIX) and req.endpoint not in PUBLIC
        if audited and req.method != "OPTIONS":
            context = current_globals()
            record = context.get("auth_record")
            event = audit_event(record, response.status_code, req)
            entries: list[dict[str, Any]] = []
            ops = context.get("bundle_entries")
            if ops:
                event["sub"], entries = entry_events(record, event, ops, response)
            log = hub().audit
            for each in (event, *entries):
                log.record(each)
        return response


def _add_cors(response: Response) -> None:
    """The CORS headers the response does not set itself (setdefault, with one look at the
    header list instead of one per header)."""
    headers = response.headers
    present = {key.lower() for key, _ in headers.items()}
    for key, lowered, value in _CORS_ITEMS:
        if lowered not in present:
            headers.add(key, value)


def _endpoint_rule(policy: TokenPolicy, endpoint: str, args: dict[str, Any]) -> None:
    if not endpoint or endpoint in SERVICE_ENFORCED:
        return  # no endpoint: routing answers 404/405 next, after authentication
    if endpoint in ("subscriptions.subscription_status", "subscriptions.endpoint_status"):
        resource_type = "Subscription" if endpoint.startswith("subscriptions.sub") else "Endpoint"
        hub().resources.read(resource_type, args["resource_id"])  # guarded read
        return
    if operations.authorize(policy, endpoint, args):
        return  # the operation's declared access rule (fhirhub/operations/model.py)
    if endpoint == "rest.validate":
        resource_type = args["resource_type"]
        if not any(policy.scopes.for_action(resource_type, a) for a in "cruds"):
            raise Forbidden(f"the access token has no scope on {resource_type}")
        return
    if not policy.unrestricted():
        raise Forbidden(f"{request.method} {request.path} needs unrestricted (admin) access")
