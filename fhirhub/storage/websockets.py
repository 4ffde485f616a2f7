"""Websocket bindings and hand-over inboxes: how the worker reaches sockets in web processes.

A web process (one gunicorn worker) with a socket bound to Subscription X records
`{owner}|Subscription/X` in `websocket_bindings` and refreshes its `until` while the socket
is open. The worker, draining X's queue under its lease as for any subscriber, hands each
delivery to every live owner (one `websocket_inbox` item per owner, deterministic _id, so a
hand-over repeated after a crash inserts nothing new) and marks it `ready`. Each web process
polls its own inbox, pings its sockets, records the delivery and deletes the item.

Per-owner items rather than one flag on the delivery: clients land on any gunicorn worker,
so several processes may hold sockets for one Subscription, and the first to ping must not
hide the delivery from the others. Every document has one writer (its owner process; the
worker only inserts items and sweeps those of processes that are gone), which FerretDB's
non-atomic updates need.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from fhirhub.storage.deliveries import DELIVERED, READY, SKIPPED, DeliveryStore
from fhirhub.storage.store import Clock, utc_now_ms

BINDINGS = "websocket_bindings"
INBOX = "websocket_inbox"
HEARTBEAT = timedelta(seconds=5)  # how often a web process refreshes its bindings
BINDING_TTL = timedelta(seconds=20)  # a binding not refreshed this long: its process is gone
STALE_ITEM = timedelta(seconds=60)  # an item not taken this long: its process is gone
NOT_CONFIRMED = "the web process holding the websocket did not confirm the ping"


class SocketStore:
    def __init__(self, db: Database, clock: Clock = utc_now_ms):
        self.bindings = db[BINDINGS]
        self.items = db[INBOX]
        self.deliveries = DeliveryStore(db)
        self.clock = clock

    # -- web process side (each process writes only its own documents) --------------------

    def bind(self, owner: str, subscriber: str) -> None:
        doc = {"owner": owner, "sub": subscriber, "until": self.clock() + BINDING_TTL}
        self.bindings.replace_one({"_id": f"{owner}|{subscriber}"}, doc, upsert=True)

    def refresh(self, owner: str) -> None:
        # An update, not an upsert: a binding removed meanwhile must stay removed.
        until = self.clock() + BINDING_TTL
        self.bindings.update_many({"owner": owner}, {"$set": {"until": until}})

    def unbind(self, owner: str, subscriber: str) -> None:
        self.bindings.delete_one({"_id": f"{owner}|{subscriber}"})

    def inbox(self, owner: str) -> list[dict[str, Any]]:
        items = list(self.items.find({"owner": owner}))
        items.sort(key=lambda i: (i["ts"], i["ev"]))  # commit order, as the queue had them
        return items

    def take(self, item: dict[str, Any], pinged: bool, error: str = "") -> None:
        """Record the outcome of one hand-over and drop the item. A process that could not
        ping (its socket closed meanwhile) must not undo another's `delivered`."""
        fields = {"at": self.clock(), "by": item["owner"], "n": 1}
        if pinged:
            self.deliveries.finish(item["del"], DELIVERED, {**fields, "err": ""})
        else:
            self.deliveries.finish_if(item["del"], READY, SKIPPED, {**fields, "err": error})
        self.items.delete_one({"_id": item["_id"]})

    # -- worker side -----------------------------------------------------------------------

    def live_owners(self, subscriber: str) -> list[str]:
        now = self.clock()
        found = self.bindings.find({"sub": subscriber})
        return sorted(d["owner"] for d in found if d["until"] > now)

    def hand_over(self, delivery: dict[str, Any], owners: list[str], by: str) -> None:
        """`ready` first: an owner may ping and record `delivered` as soon as its item
        exists, and a later `ready` would overwrite that. A crash in between leaves a `ready`
        delivery without items, which the sweep finishes."""
        now = self.clock()
        self.deliveries.finish(delivery["_id"], READY, {"at": now, "by": by, "to": owners})
        items = [
            {
                "_id": f"{owner}|{delivery['_id']}",
                "owner": owner,
                "sub": delivery["sub"],
                "del": delivery["_id"],
                "ev": delivery["ev"],
                "ts": delivery["ts"],
                "at": now,
            }
            for owner in owners
        ]
        try:
            self.items.insert_many(items, ordered=False)
        except BulkWriteError as exc:
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                raise

    def sweep(self) -> int:
        """Forget bindings and items of web processes that stopped without cleaning up
        (killed); `ready` deliveries nobody confirmed become skipped. Returns how many."""
        now = self.clock()
        cutoff = now - STALE_ITEM
        self.bindings.delete_many({"until": {"$lt": now - BINDING_TTL}})
        self.items.delete_many({"at": {"$lt": cutoff}})
        stale = self.deliveries.ready_before(cutoff)
        for delivery_id in stale:
            fields = {"at": now, "err": NOT_CONFIRMED}
            self.deliveries.finish_if(delivery_id, READY, SKIPPED, fields)
        return len(stale)

    def ensure_indexes(self) -> None:
        self.bindings.create_index([("sub", ASCENDING)], name="binding_sub")
        self.items.create_index([("owner", ASCENDING)], name="inbox_owner")
