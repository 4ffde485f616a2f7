"""[base]/websocket: the R4 Subscription websocket channel (`bind {id}` -> `bound {id}`,
then `ping {id}` for every matching change; failures answer `error ...`).

Served by a small app of its own in front of the main one (install()): the auth guard opens
an endpoint it does not list to unrestricted tokens only, while here any valid token may
connect and each `bind` is a guarded read of the Subscription, as a REST read would be.
Authentication reuses the guard's mechanics (AuthService.authenticate and .policy, installed
with access.install); the token comes in the Authorization header of the upgrade (no query
parameter: it would end up in access logs). Cookies are never used, so a cross-site page
cannot open a socket on someone's behalf. The token is checked again at each `bind` and
every REAUTH_S, and the socket closed (1008) once it has expired or been revoked.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request
from flask_sock import Sock
from pymongo.errors import PyMongoError
from simple_websocket import ConnectionClosed
from werkzeug.routing import WebsocketMismatch

from fhirhub.api.audit.search import audit_event
from fhirhub.api.fhir import errors
from fhirhub.api.fhir.render import fhir_response
from fhirhub.api.fhir.requests import hub
from fhirhub.api.websocket.pings import Connection, SocketRegistry
from fhirhub.fhir.errors import BadRequest, FhirError, ServiceUnavailable
from fhirhub.fhir.operation_outcome import outcome_for_error
from fhirhub.hub import Hub
from fhirhub.service import access
from fhirhub.storage.websockets import SocketStore
from fhirhub.subscriptions.model import WEBSOCKET
from fhirhub.subscriptions.oversight import check_watcher

log = logging.getLogger(__name__)

PATH = "/fhir/websocket"
EXTENSION = "fhirhub_websocket"
TICK_S = 1.0  # how soon an idle socket notices a stopping server or an expired token
REAUTH_S = 60.0
ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
# simple-websocket: ping idle clients (finds dead peers, keeps proxies from timing out);
# commands are short.
SERVER_OPTIONS = {"ping_interval": 25, "max_message_size": 1024}
USAGE = "use: bind {subscription id}"

bp = Blueprint("websocket", __name__)
sock = Sock()


def registry() -> SocketRegistry:
    found: SocketRegistry = current_app.extensions[EXTENSION]
    return found


def install(app: Flask, the_hub: Hub) -> None:
    sockets = Flask("fhirhub.websocket")
    sockets.config["SOCK_SERVER_OPTIONS"] = SERVER_OPTIONS
    sockets.extensions["fhirhub"] = the_hub
    sockets.extensions[EXTENSION] = app.extensions[EXTENSION] = SocketRegistry(
        SocketStore(the_hub.db), the_hub.settings.websocket_max
    )
    errors.register_error_handlers(sockets)

    @sockets.errorhandler(WebsocketMismatch)  # routing refuses a plain request first
    def _not_an_upgrade(_error: WebsocketMismatch) -> Response:
        problem = BadRequest(f"connect with a websocket client, then {USAGE}")
        return fhir_response(outcome_for_error(problem), 400)

    sockets.register_blueprint(bp)
    inner = app.wsgi_app

    def dispatch(environ: dict[str, Any], start_response: Any) -> Any:
        if str(environ.get("PATH_INFO", "")).rstrip("/") == PATH:
            return sockets.wsgi_app(environ, start_response)
        return inner(environ, start_response)

    app.wsgi_app = dispatch  # type: ignore[method-assign]


@bp.before_request
def _authenticate() -> None:
    the_hub = hub()
    if the_hub.settings.auth:
        record = the_hub.auth.authenticate(request.headers.get("Authorization"))
        g.auth_record = record
        g.access_token = access.install(the_hub.auth.policy(record))
    if not registry().open_slot():
        raise ServiceUnavailable("too many open websockets on this server process; retry later")
    g.slot = True


@bp.teardown_request
def _release(_error: BaseException | None) -> None:
    if g.pop("slot", False):
        registry().release_slot()
    token = g.pop("access_token", None)
    if token is not None:
        access.uninstall(token)


@bp.after_request
def _audit(response: Response) -> Response:
    if hub().settings.auth and not g.get("upgraded"):
        hub().audit.record(audit_event(g.get("auth_record"), response.status_code))
    return response


@sock.route(PATH, bp=bp, strict_slashes=False)
def subscription_websocket(ws: Any) -> None:
    g.upgraded = True
    the_hub = hub()
    if the_hub.settings.auth:
        the_hub.audit.record(audit_event(g.get("auth_record"), 101))
    header = request.headers.get("Authorization") if the_hub.settings.auth else None
    Session(the_hub, registry(), Connection(ws), header).run()


class Session:
    def __init__(
        self, the_hub: Hub, sockets: SocketRegistry, connection: Connection, header: str | None
    ):
        self.hub = the_hub
        self.sockets = sockets
        self.connection = connection
        self.header = header  # None: FHIRHUB_AUTH=off
        self.checked = time.monotonic()

    def run(self) -> None:
        try:
            while not self.sockets.stopping():
                message = self.connection.ws.receive(timeout=TICK_S)
                if message is None:
                    if time.monotonic() - self.checked > REAUTH_S and not self._authorized():
                        self.connection.close(1008, "the access token expired or was revoked")
                        return
                    continue
                if not self.connection.send(self.handle(message)):
                    return
            self.connection.close(1001, "server shutting down; reconnect and bind again")
        except ConnectionClosed:
            raise  # the client went away: flask-sock's normal end
        except Exception:
            # Past the upgrade an error response can no longer be sent: close instead.
            log.exception("websocket session")
            self.connection.close(1011, "internal server error; see the server log")
        finally:
            self.sockets.forget(self.connection)

    def handle(self, message: str | bytes) -> str:
        try:
            return self._command(message)
        except PyMongoError as error:
            log.warning("websocket command: database error: %s", error)
            return "error the database did not answer; try again"

    def _command(self, message: str | bytes) -> str:
        if not isinstance(message, str):
            return f"error commands are text; {USAGE}"
        verb, _, argument = message.strip().partition(" ")
        if verb != "bind":
            return f"error unknown command {verb[:40]!r}; {USAGE}"
        subscription_id = argument.strip().removeprefix("Subscription/")
        if not ID.fullmatch(subscription_id):
            return f"error bind {argument.strip()[:70]!r}: not a Subscription id"
        problem = self._check(subscription_id)
        if problem:
            return f"error bind {subscription_id}: {problem}"
        self.sockets.bind(self.connection, f"Subscription/{subscription_id}")
        return f"bound {subscription_id}"

    def _authorized(self) -> bool:
        self.checked = time.monotonic()
        if self.header is None:
            return True
        try:
            self.hub.auth.authenticate(self.header)
        except FhirError:
            return False
        except PyMongoError:
            return True  # a database blip is no reason to drop clients; ask again later
        return True

    def _check(self, subscription_id: str) -> str:
        """Why this socket may not bind the Subscription ('' when it may)."""
        token = None
        if self.header is not None:
            # The policy of now: the token may have been revoked, care teams changed.
            try:
                record = self.hub.auth.authenticate(self.header)
            except FhirError as error:
                return error.diagnostics
            token = access.install(self.hub.auth.policy(record))
        try:
            resource = self.hub.resources.read("Subscription", subscription_id).resource or {}
            check_watcher("Subscription", resource)  # pings are for its owner or an admin
        except FhirError as error:
            return error.diagnostics
        finally:
            if token is not None:
                access.uninstall(token)
        channel = (resource.get("channel") or {}).get("type")
        if channel != WEBSOCKET:
            return f"channel.type is {channel}, not websocket"
        if resource.get("status") != "active":
            return f"status is {resource.get('status')}, not active"
        return ""
