"""While the database is known to be down, requests that need it answer 503 at once.

Without this, each request would wait in pymongo's server selection (FHIRHUB_DB_TIMEOUT_MS)
before its 503, every gunicorn thread would soon be waiting, and `/healthz` would queue
behind them. A database error seen by any request (storage/availability.py) makes the
process *suspect* the database and starts a probe: a ping with the health client's short
timeouts, repeated every PROBE_S. Requests keep going to the database while it is only
suspected (one slow query must not close the door for everyone); once a probe fails they
get 503 OperationOutcome with Retry-After without touching it, until a probe succeeds.
`/healthz`, `/fhir/metadata` and the discovery documents never need the database.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from flask import Flask, Response, jsonify, request

from fhirhub.api.fhir.render import fhir_response
from fhirhub.fhir.errors import Issue
from fhirhub.fhir.operation_outcome import outcome

log = logging.getLogger(__name__)

PROBE_S = 0.25
RETRY_AFTER_S = 5
EXTENSION = "fhirhub.availability"
NEEDS_NO_DATABASE = ("/healthz", "/fhir/metadata", "/fhir/.well-known/", "/auth/.well-known/")
UNAVAILABLE = "the database is unavailable; retry later"

UP, SUSPECT, DOWN = "up", "suspect", "down"


class DatabaseGate:
    def __init__(self, ping: Callable[[], str | None], probe_s: float = PROBE_S):
        self.ping = ping  # None when the database answers, else the problem
        self.probe_s = probe_s
        self.state = UP
        self.problem = ""
        self._lock = threading.Lock()
        self._probing = False

    @property
    def closed(self) -> bool:
        return self.state == DOWN

    def failed(self, error: BaseException) -> None:
        """A request met a database error: suspect the database and check it."""
        with self._lock:
            if self.state == UP:
                self.state = SUSPECT
                self.problem = str(error).split("\n")[0][:200]
            if self._probing:
                return
            self._probing = True
        threading.Thread(target=self._probe, name="database-probe", daemon=True).start()

    def _probe(self) -> None:
        stop = threading.Event()
        try:
            while (problem := self.ping()) is not None:
                with self._lock:
                    if self.state != DOWN:
                        log.warning("database unavailable: %s; answering 503", problem)
                    self.state, self.problem = DOWN, problem
                stop.wait(self.probe_s)
            with self._lock:
                if self.state == DOWN:
                    log.warning("database available again")
                self.state, self.problem = UP, ""
        finally:
            with self._lock:
                self._probing = False


def unavailable_response() -> Response:
    headers = {"Retry-After": str(RETRY_AFTER_S)}
    if request.path.startswith("/fhir"):
        issue = Issue(code="transient", diagnostics=UNAVAILABLE)
        return fhir_response(outcome([issue]), 503, headers)
    # The authorization server's error format (RFC 6749 section 4.1.2.1).
    response = jsonify(error="temporarily_unavailable", error_description=UNAVAILABLE)
    response.status_code = 503
    response.headers.update(headers)
    return response


def install(app: Flask, gate: DatabaseGate) -> None:
    """Before any other request hook (the auth guard reads tokens from the database)."""
    app.extensions[EXTENSION] = gate

    @app.before_request
    def _database_gate() -> Response | None:
        if gate.closed and not request.path.startswith(NEEDS_NO_DATABASE):
            return unavailable_response()
        return None


def gate_of(app: Flask) -> DatabaseGate | None:
    gate: DatabaseGate | None = app.extensions.get(EXTENSION)
    return gate
