"""gunicorn server hooks (`--config python:fhirhub.gunicorn_hooks`, set by `fhirhub serve`).

A gthread worker told to stop waits up to its graceful timeout for open connections, and
its pool threads are joined at exit: an open Subscription websocket would hold the worker
(and `fhirhub serve`'s shutdown) for as long as the client stays. The sockets therefore
watch the worker's `alive` flag and close themselves (1001, going away) within a second.
"""

from __future__ import annotations

from typing import Any


def post_worker_init(worker: Any) -> None:
    from fhirhub.api.websocket import EXTENSION  # here: gunicorn's master never needs it

    extensions = getattr(worker.wsgi, "extensions", {})
    registry = extensions.get(EXTENSION)
    if registry is not None:
        registry.stopping = lambda: not worker.alive
