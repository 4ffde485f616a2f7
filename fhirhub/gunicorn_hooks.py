"""gunicorn server hooks (`--config python:fhirhub.gunicorn_hooks`, set by `fhirhub serve`).

A gthread worker told to stop waits up to its graceful timeout for open connections, and
its pool threads are joined at exit: an open Subscription websocket would hold the worker
(and `fhirhub serve`'s shutdown) for as long as the client stays. The sockets therefore
watch the worker's `alive` flag and close themselves (1001, going away) within a second.

Each worker also loads the FHIR definitions before its first request and freezes its heap
(fhirhub/heap.py: the garbage collector otherwise rescans them on every full collection).

Errors gunicorn answers itself, before the application sees the request (a request line
over --limit-request-line: 414; too many or too large headers: 431; a malformed request
line, header or chunked body: 400; ...), were HTML pages. Each worker replaces gunicorn's
error writer with one that answers an OperationOutcome (same status and message), so every
error a FHIR client can get is one.
"""

from __future__ import annotations

from typing import Any

import orjson

# FHIR issue types (valueset issue-type) for the statuses gunicorn answers with itself.
_ISSUE_CODES = {400: "structure", 403: "forbidden", 414: "too-long", 431: "too-long"}
_ISSUE_CODES.update({417: "not-supported", 501: "not-supported", 500: "exception"})


def operation_outcome_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn.util.write_error, answering an OperationOutcome instead of an HTML page."""
    from gunicorn import util

    text = mesg or reason
    issue = {
        "severity": "error" if status_int < 500 else "fatal",
        "code": _ISSUE_CODES.get(status_int, "processing"),
        "diagnostics": text if len(text) <= 300 else text[:297] + "...",
    }
    body = orjson.dumps({"resourceType": "OperationOutcome", "issue": [issue]})
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/fhir+json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


def post_worker_init(worker: Any) -> None:
    from gunicorn import util

    util.write_error = operation_outcome_error  # the worker's error path calls util.write_error
    from fhirhub.api.websocket.channel import EXTENSION  # here: gunicorn's master never needs it

    extensions = getattr(worker.wsgi, "extensions", {})
    registry = extensions.get(EXTENSION)
    if registry is not None:
        registry.stopping = lambda: not worker.alive
    hub = extensions.get("fhirhub")
    if hub is not None:
        from fhirhub import heap

        heap.settle(hub)
