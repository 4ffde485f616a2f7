"""The one enforcement point for /fhir: authenticate, install the token's policy, audit.

Services then check every read, write and search against the installed policy (see
fhirhub/service/access.py); views without such a service call are listed here with their
own requirement, and any endpoint not listed needs a token with unrestricted access, so a
new endpoint is closed until someone decides otherwise.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g, request

from fhirhub.api.audit_bundle import entry_events
from fhirhub.api.auth_audit import audit_event
from fhirhub.api.requests import hub
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
        if not request.path.startswith(FHIR_PREFIX) or request.endpoint in PUBLIC:
            return
        if request.method == "OPTIONS":
            return
        if request.endpoint == BUNDLE_ENDPOINT:
            g.bundle_entries, g.bundle_observer = bundle_entries.observe_entries()
        the_hub = hub()
        record = the_hub.auth.authenticate(request.headers.get("Authorization"))
        g.auth_record = record
        policy = the_hub.auth.policy(record)
        g.access_token = access.install(policy)
        _endpoint_rule(policy, request.endpoint or "", request.view_args or {})

    @app.teardown_request
    def _uninstall(_error: BaseException | None) -> None:
        token = g.pop("access_token", None)
        if token is not None:
            access.uninstall(token)
        observer = g.pop("bundle_observer", None)
        if observer is not None:
            bundle_entries.stop_observing(observer)

    @app.after_request
    def _audit(response: Response) -> Response:
        if request.path.startswith(CORS_PATHS):
            for key, value in CORS.items():
                response.headers.setdefault(key, value)
        audited = request.path.startswith(FHIR_PREFIX) and request.endpoint not in PUBLIC
        if audited and request.method != "OPTIONS":
            record = g.get("auth_record")
            event = audit_event(record, response.status_code)
            entries: list[dict[str, Any]] = []
            ops = g.get("bundle_entries")
            if ops:
                event["sub"], entries = entry_events(record, event, ops, response)
            log = hub().audit
            for each in (event, *entries):
                log.record(each)
        return response


def _endpoint_rule(policy: TokenPolicy, endpoint: str, args: dict[str, Any]) -> None:
    if not endpoint or endpoint in SERVICE_ENFORCED:
        return  # no endpoint: routing answers 404/405 next, after authentication
    if endpoint in ("subscriptions.subscription_status", "subscriptions.endpoint_status"):
        resource_type = "Subscription" if endpoint.startswith("subscriptions.sub") else "Endpoint"
        hub().resources.read(resource_type, args["resource_id"])  # guarded read
        return
    if endpoint == "rest.validate":
        resource_type = args["resource_type"]
        if not any(policy.scopes.for_action(resource_type, a) for a in "cruds"):
            raise Forbidden(f"the access token has no scope on {resource_type}")
        return
    if not policy.unrestricted():
        raise Forbidden(f"{request.method} {request.path} needs unrestricted (admin) access")
