"""Where each outbound message stands (one fixed-schema record per message key).

Written only by the worker holding the lease of the job that sends the message, so each
record has one writer at a time. `sending` is written just before the message is handed
over (SMTP DATA): found again by a later attempt, it means the earlier one died or timed
out while the receiver may already have had the message.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import mongoengine as me
from pymongo.database import Database

OUTBOUND = "outbound_messages"
SENDING = "sending"
SENT = "sent"
NOT_SENT = "not-sent"
IN_DOUBT = "in-doubt"  # recorded as such; never sent again
STATES = (SENDING, SENT, NOT_SENT, IN_DOUBT)


class OutboundRecord(me.Document):
    id = me.StringField(primary_key=True)
    channel = me.StringField(required=True)
    st = me.StringField(required=True, choices=STATES)
    at = me.DateTimeField(required=True)
    err = me.StringField()
    ref = me.StringField()  # the gateway's id for the message
    meta = {"collection": OUTBOUND, "auto_create_index": False}


class OutboundStore:
    def __init__(self, db: Database):
        self.coll = db[OUTBOUND]

    def state(self, key: str) -> dict[str, Any] | None:
        doc = self.coll.find_one({"_id": key})
        return dict(OutboundRecord._from_son(doc).to_mongo()) if doc else None

    def put(
        self, key: str, channel: str, state: str, at: datetime, err: str = "", ref: str = ""
    ) -> None:
        record = OutboundRecord(id=key, channel=channel, st=state, at=at, err=err, ref=ref)
        record.validate()
        self.coll.replace_one({"_id": key}, record.to_mongo().to_dict(), upsert=True)

    def forget(self, key: str) -> None:
        self.coll.delete_one({"_id": key})
