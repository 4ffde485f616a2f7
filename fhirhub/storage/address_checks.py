"""Verified subscriber addresses: one record per address change whose verification ping
was answered 2xx (fhirhub/worker/verification.py). Keyed by subscriber and change nonce,
so a record is written once and never changes; a later change has a new nonce."""

from __future__ import annotations

from contextlib import suppress
from datetime import datetime

from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

COLLECTION = "address_verifications"


class AddressChecks:
    def __init__(self, db: Database):
        self.collection = db[COLLECTION]

    def verified(self, subscriber: str, nonce: str) -> bool:
        return self.collection.find_one({"_id": f"{subscriber}|{nonce}"}, {"_id": 1}) is not None

    def record(self, subscriber: str, nonce: str, address: str, at: datetime) -> None:
        record = {"_id": f"{subscriber}|{nonce}", "sub": subscriber, "address": address}
        with suppress(DuplicateKeyError):  # another worker verified it first
            self.collection.insert_one({**record, "at": at})
