"""SearchParameter resources stored on the server become live search parameters.

Every process (gunicorn workers, the notification worker) notices a change within
REFRESH_SECONDS by checking the newest SearchParameter write, one small query.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from pymongo import DESCENDING
from pymongo.database import Database

from fhirhub.fhir.search.registry import SearchRegistry
from fhirhub.storage.documents import RESOURCES, decode_resource

REFRESH_SECONDS = 1.0


class CustomParameters:
    def __init__(self, db: Database, registry: SearchRegistry):
        self.collection = db[RESOURCES]
        self.registry = registry
        self._checked = 0.0
        self._marker: Any = None
        self._lock = threading.Lock()

    def maybe_refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < REFRESH_SECONDS:
            return
        with self._lock:
            if now - self._checked < REFRESH_SECONDS:
                return
            self._checked = now
            newest = self.collection.find_one(
                {"t": "SearchParameter"}, {"ts": 1, "v": 1}, sort=[("ts", DESCENDING)]
            )
            count = self.collection.count_documents({"t": "SearchParameter", "del": False})
            marker = (newest["_id"], newest["ts"], count) if newest else None
            if marker == self._marker:
                return
            self._marker = marker
            stored = self.collection.find({"t": "SearchParameter", "del": False}, {"res": 1})
            self.registry.set_custom([decode_resource(d["res"]) or {} for d in stored])

    def force(self) -> None:
        self._checked = 0.0
        self.maybe_refresh()
