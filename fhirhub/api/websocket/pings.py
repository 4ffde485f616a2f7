"""The Subscription websockets of this web process, and the thread that pings them.

The thread runs only while some socket is bound: every POLL_S it reads this process's inbox
(storage/websockets.py: deliveries the worker handed over), sends `ping {id}` on each local
socket bound to the item's Subscription and records the delivery; every HEARTBEAT it
refreshes this process's bindings so the worker keeps handing over to it. Sends on one
socket are serialized by its lock: the socket's own thread answers `bind` while this one
pings, and wsproto's compression state must see frames in the order they go out.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from pymongo.errors import PyMongoError
from simple_websocket import ConnectionClosed

from fhirhub.storage.websockets import HEARTBEAT, SocketStore

log = logging.getLogger(__name__)

POLL_S = 0.05
CLOSED = "the websocket closed before the ping"


class Connection:
    def __init__(self, ws: Any):
        self.ws = ws
        self.lock = threading.Lock()
        self.bound: set[str] = set()  # "Subscription/{id}"

    def send(self, text: str) -> bool:
        with self.lock:
            try:
                self.ws.send(text)
            except (ConnectionClosed, OSError):
                return False
        return True

    def close(self, code: int, reason: str) -> None:
        with self.lock, contextlib.suppress(ConnectionClosed, OSError):
            self.ws.close(code, reason)


class SocketRegistry:
    def __init__(self, store: SocketStore, limit: int):
        self.store = store
        self.limit = limit
        self._open = 0
        self._bound: dict[str, set[Connection]] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._owner: tuple[int, str] | None = None
        # Set by fhirhub.gunicorn_hooks: a stopping gunicorn worker waits for open
        # connections, so sockets must notice and close themselves.
        self.stopping: Callable[[], bool] = lambda: False

    @property
    def owner(self) -> str:
        # Derived in the process holding the sockets: an app built before a fork
        # (gunicorn --preload) must not give two workers one inbox.
        pid = os.getpid()
        if self._owner is None or self._owner[0] != pid:
            self._owner = (pid, f"web:{socket.gethostname()}:{pid}:{uuid.uuid4().hex[:8]}")
        return self._owner[1]

    def open_slot(self) -> bool:
        with self._lock:
            if self._open >= self.limit:
                return False
            self._open += 1
            return True

    def release_slot(self) -> None:
        with self._lock:
            self._open -= 1

    def bind(self, connection: Connection, key: str) -> None:
        """Registered in the database before the client hears `bound`, so the worker hands
        over the very next matching change."""
        with self._lock:
            if key not in self._bound:
                self.store.bind(self.owner, key)
            self._bound.setdefault(key, set()).add(connection)
            connection.bound.add(key)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="websocket-pings")
                self._thread.daemon = True
                self._thread.start()

    def forget(self, connection: Connection) -> None:
        with self._lock:
            for key in connection.bound:
                holders = self._bound.get(key, set())
                holders.discard(connection)
                if not holders:
                    self._bound.pop(key, None)
                    self._unbind(key)
            connection.bound.clear()

    def _unbind(self, key: str) -> None:
        try:
            self.store.unbind(self.owner, key)
        except PyMongoError as error:  # the binding expires by itself (BINDING_TTL)
            log.warning("could not unbind %s: %s", key, error)

    def _run(self) -> None:
        beat = time.monotonic() + HEARTBEAT.total_seconds()
        while True:
            try:
                self._poll()
                if time.monotonic() >= beat:
                    beat = time.monotonic() + HEARTBEAT.total_seconds()
                    with self._lock:
                        self.store.refresh(self.owner)
            except PyMongoError as error:
                log.warning("websocket pings: database error, retrying: %s", error)
                time.sleep(1.0)
            with self._lock:
                if not self._bound:
                    self._thread = None
                    return
            time.sleep(POLL_S)

    def _poll(self) -> None:
        for item in self.store.inbox(self.owner):
            with self._lock:
                holders = list(self._bound.get(item["sub"], ()))
            ping = f"ping {item['sub'].split('/', 1)[1]}"
            pinged = [connection.send(ping) for connection in holders]
            self.store.take(item, any(pinged), CLOSED)
