"""Fill slots of a prescription, claimed by unique insert: `{order}#{n}` for n below the
number of fills the order allows, each held by one MedicationDispense.

A count of the dispenses on file cannot stop two pharmacies dispensing the last refill at
the same moment (FerretDB has no multi-document transactions); an insert whose `_id`
exists fails atomically, so of concurrent claimers of a slot exactly one gets it. A slot
whose holder no longer counts (deleted, cancelled, moved to another order) is taken over
by a guarded delete-then-insert; a holder not yet on file is a write in flight and keeps
its slot for IN_FLIGHT_MS.
"""

from __future__ import annotations

from collections.abc import Callable

import mongoengine as me
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from fhirhub.storage.store import Clock, utc_now_ms

COLLECTION = "medication_fill_claims"
IN_FLIGHT_MS = 120_000


class FillClaim(me.Document):
    id = me.StringField(primary_key=True)  # "MedicationRequest/7#2"
    order = me.StringField(required=True)
    slot = me.IntField(required=True, min_value=0)
    holder = me.StringField(required=True)  # "MedicationDispense/12"
    at = me.IntField(required=True)  # epoch ms (no tz-naive datetimes to compare)
    meta = {"collection": COLLECTION, "auto_create_index": False}


# (holder, order) -> True (counts for it), False (definitely not), None (not on file)
Counts = Callable[[str, str], "bool | None"]


class FillClaims:
    def __init__(self, db: Database, clock: Clock = utc_now_ms):
        self.coll = db[COLLECTION]
        self.clock = clock

    def _insert(self, order: str, slot: int, holder: str, now: int) -> bool:
        claim = FillClaim(id=f"{order}#{slot}", order=order, slot=slot, holder=holder, at=now)
        claim.validate()
        try:
            self.coll.insert_one(claim.to_mongo().to_dict())
        except DuplicateKeyError:
            return False
        return True

    def take(self, order: str, allowed: int, holder: str, counts: Counts) -> tuple[int, bool]:
        """(slot, newly taken) for `holder`, or (-1, False) when every slot is held by a
        dispense that counts."""
        now = int(self.clock().timestamp() * 1000)
        for slot in range(allowed):
            if self._insert(order, slot, holder, now):
                return slot, True
            doc = self.coll.find_one({"_id": f"{order}#{slot}"})
            if doc is None:  # released just now: try it again once
                if self._insert(order, slot, holder, now):
                    return slot, True
                continue
            if doc["holder"] == holder:
                return slot, False
            state = counts(str(doc["holder"]), order)
            stale = state is False or (state is None and now - int(doc["at"]) > IN_FLIGHT_MS)
            if not stale:
                continue
            taken = {"_id": doc["_id"], "holder": doc["holder"], "at": doc["at"]}
            gone = self.coll.delete_one(taken)
            if gone.deleted_count and self._insert(order, slot, holder, now):
                return slot, True
        return -1, False

    def release(self, order: str, slot: int, holder: str) -> None:
        self.coll.delete_one({"_id": f"{order}#{slot}", "holder": holder})

    def held_by(self, holder: str) -> list[tuple[str, int]]:
        return [(d["order"], d["slot"]) for d in self.coll.find({"holder": holder})]
