"""Change tokens per key, for caches that several worker processes keep.

A cache of something derived from stored resources (a patient's monitoring enrolment from
their CarePlan, Goals and Devices) stays valid while its key's token is unchanged. The
dispatcher, which sees every committed change in commit order, replaces the token of each
key a change touches before it plans the reactions of that change's batch, so a reaction
that reads the token first and then the data it derives can never keep an answer older
than a change committed before its own event. Reading a token is one point read by `_id`
(the only kind FerretDB always pushes down); only the dispatcher writes tokens.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import mongoengine as me
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

GENERATIONS = "change_tokens"


class ChangeToken(me.Document):
    id = me.StringField(primary_key=True, max_length=300)  # "monitoring:Patient/123"
    token = me.StringField(required=True)
    meta = {"collection": GENERATIONS, "auto_create_index": False}


class GenerationStore:
    def __init__(self, db: Database):
        self.tokens = db[GENERATIONS]

    def token(self, key: str) -> str | None:
        """The key's current token; None when nothing has changed it yet."""
        found = self.tokens.find_one({"_id": key}, {"token": 1})
        return str(found["token"]) if found else None

    def bump(self, keys: Iterable[str]) -> None:
        for key in sorted(set(keys)):
            record = ChangeToken(id=key, token=uuid.uuid4().hex)
            record.validate()
            doc = record.to_mongo().to_dict()
            try:
                self.tokens.replace_one({"_id": key}, doc, upsert=True)
            except DuplicateKeyError:  # a concurrent first upsert (lease hand-over) won
                self.tokens.replace_one({"_id": key}, doc)
