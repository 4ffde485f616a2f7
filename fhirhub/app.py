"""Flask application factory. Nothing is built at import time."""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from fhirhub.api import availability, health
from fhirhub.api.audit import search as auth_audit
from fhirhub.api.auth import guard as auth_guard
from fhirhub.api.auth import oauth as auth
from fhirhub.api.auth import pages as auth_pages
from fhirhub.api.fhir import (
    errors,
    metadata,
    operations,
    render,
    rest,
    search,
    smart,
    subscriptions,
)
from fhirhub.api.fhir.negotiation import response_mime
from fhirhub.api.fhir.requests import current_globals, current_request
from fhirhub.api.websocket import channel as websocket
from fhirhub.config import Settings
from fhirhub.hub import Hub

FHIR_PREFIX = "/fhir"


def create_app(settings: Settings | None = None, hub: Hub | None = None) -> Flask:
    settings = settings or Settings.from_env()
    hub = hub or Hub(settings)
    app = Flask("fhirhub")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["fhirhub"] = hub
    app.url_map.strict_slashes = False

    @app.before_request
    def _negotiate() -> None:
        req = current_request()
        if req.path.startswith(FHIR_PREFIX):
            context = current_globals()
            context.fhir_mime = "application/fhir+json"  # errors in negotiation render as JSON
            context.fhir_mime = response_mime(req.args.get("_format"), req.headers.get("Accept"))

    errors.register_error_handlers(app)
    # Fast 503s while the database is down; before the auth guard, which reads tokens.
    availability.install(app, availability.DatabaseGate(hub.database_problem))
    render.install(app)  # write-only secrets: masked in every response
    auth_guard.install(app, settings)  # SMART: authenticate /fhir requests, enforce scopes, audit
    app.register_blueprint(metadata.bp, url_prefix=FHIR_PREFIX)
    app.register_blueprint(smart.bp, url_prefix=FHIR_PREFIX)
    if settings.auth:
        app.register_blueprint(auth_audit.bp, url_prefix=FHIR_PREFIX)
    app.register_blueprint(auth.bp, url_prefix="/auth")
    app.register_blueprint(auth_pages.bp, url_prefix="/auth")
    operations.install(app, hub.operations, FHIR_PREFIX)  # before rest: its routes are static
    app.register_blueprint(rest.bp, url_prefix=FHIR_PREFIX)
    app.register_blueprint(search.bp, url_prefix=FHIR_PREFIX)
    app.register_blueprint(subscriptions.bp, url_prefix=FHIR_PREFIX)
    app.register_blueprint(health.bp)
    from fhirhub.medication.cds import api as cds_api

    app.register_blueprint(cds_api.bp)  # CDS Hooks 2.0 at /cds-services
    websocket.install(app, hub)  # [base]/websocket, served in front of the routes above
    if settings.proxy_hops > 0:
        # Behind that many reverse proxies, trust their X-Forwarded-For/-Proto/-Host, so the
        # client address (login limits, audit) is the user's, not the proxy's. Never by
        # default: a client could otherwise forge its address.
        hops = settings.proxy_hops
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops
        )
    return app
