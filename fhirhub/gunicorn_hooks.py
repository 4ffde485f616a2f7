"""gunicorn server hooks (`--config python:fhirhub.gunicorn_hooks`, set by `fhirhub serve`).

A gthread worker told to stop waits up to its graceful timeout for open connections, and
its pool threads are joined at exit: an open Subscription websocket would hold the worker
(and `fhirhub serve`'s shutdown) for as long as the client stays. The sockets therefore
watch the worker's `alive` flag and close themselves (1001, going away) within a second.

Each worker also loads the FHIR definitions before its first request and freezes its heap
(fhirhub/heap.py: the garbage collector otherwise rescans them on every full collection).
"""

from __future__ import annotations

from typing import Any


def post_worker_init(worker: Any) -> None:
    from fhirhub.api.websocket import EXTENSION  # here: gunicorn's master never needs it

    extensions = getattr(worker.wsgi, "extensions", {})
    registry = extensions.get(EXTENSION)
    if registry is not None:
        registry.stopping = lambda: not worker.alive
    hub = extensions.get("fhirhub")
    if hub is not None:
        from fhirhub import heap

        heap.settle(hub)
