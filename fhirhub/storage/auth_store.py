"""Authorization records (clients, users, pending requests, codes, tokens, keys) on pymongo.

Fixed-schema hub records kept apart from FHIR resources. Secrets (codes, tokens, client
secrets) are stored only as hashes, so a database dump cannot be replayed against the API.
Single-document operations only (FerretDB has no multi-document transactions): one-time
use of codes and assertion ids relies on a conditional update or a unique _id.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

Record = dict[str, Any]

CLIENTS = "auth_clients"
USERS = "auth_users"
REQUESTS = "auth_requests"
CODES = "auth_codes"
TOKENS = "auth_tokens"
ASSERTIONS = "auth_assertions"
KEYS = "auth_keys"
LAUNCHES = "auth_launches"
REFRESH_USES = "auth_refresh_uses"
LOGIN_FAILURES = "auth_login_failures"
TOKEN_CACHE_LIMIT = 10_000


def secret_hash(secret: str) -> str:
    # Tokens and codes are 256-bit random values, so one fast hash is enough (no salt needed).
    return hashlib.sha256(secret.encode()).hexdigest()


def now() -> datetime:
    return datetime.now(UTC)


class AuthStore:
    def __init__(self, db: Database, token_cache_seconds: float = 0.0):
        self.db = db
        self._indexed = False
        # Access-token lookups, cached per process for a moment: every API request needs
        # one, and on the embedded database it was a third of a read's time. Revocations
        # made here clear the cache at once; other processes see them within the TTL.
        self._token_cache: dict[str, tuple[float, Record | None]] = {}
        self._token_cache_seconds = token_cache_seconds
        self._token_generation = 0  # bumped by every forget: a read begun before is not cached

    def ensure_indexes(self) -> None:
        if self._indexed:
            return
        self.db[TOKENS].create_index([("grant", ASCENDING)], name="grant")
        self.db[KEYS].create_index([("created", ASCENDING)], name="created")
        self.db[LOGIN_FAILURES].create_index([("key", ASCENDING), ("ts", ASCENDING)], name="key")
        self._indexed = True

    # -- clients and users ------------------------------------------------------------------

    def put_client(self, client: Record) -> None:
        self.db[CLIENTS].replace_one({"_id": client["_id"]}, client, upsert=True)

    def client(self, client_id: str) -> Record | None:
        return self.db[CLIENTS].find_one({"_id": client_id})

    def clients(self) -> list[Record]:
        return list(self.db[CLIENTS].find({}, sort=[("_id", ASCENDING)]))

    def remove_client(self, client_id: str) -> bool:
        return self.db[CLIENTS].delete_one({"_id": client_id}).deleted_count == 1

    def put_user(self, user: Record) -> None:
        self.db[USERS].replace_one({"_id": user["_id"]}, user, upsert=True)

    def user(self, username: str) -> Record | None:
        return self.db[USERS].find_one({"_id": username})

    def users(self) -> list[Record]:
        return list(self.db[USERS].find({}, sort=[("_id", ASCENDING)]))

    # -- short-lived records: pending requests, launches, codes -------------------------------

    def put(self, collection: str, record: Record) -> None:
        self.db[collection].insert_one(record)

    def get_live(self, collection: str, key: str) -> Record | None:
        record = self.db[collection].find_one({"_id": key})
        if record is None or record["expires"] <= now():
            return None
        return record

    def update(self, collection: str, key: str, changes: Record) -> None:
        self.db[collection].update_one({"_id": key}, {"$set": changes})

    def take_code(self, code: str) -> tuple[Record | None, bool]:
        """(the code's record, whether this call is its first use). A second use returns the
        record with False so the caller can revoke what the first use issued."""
        key = secret_hash(code)
        record = self.db[CODES].find_one_and_update(
            {"_id": key, "used": False},
            {"$set": {"used": True}},
            return_document=ReturnDocument.BEFORE,
        )
        if record is not None:
            return record, True
        return self.db[CODES].find_one({"_id": key}), False

    def first_use_of_assertion(self, client_id: str, jti: str, expires: datetime) -> bool:
        """Record a client assertion id; False when it was seen before (a replay)."""
        try:
            self.db[ASSERTIONS].insert_one({"_id": f"{client_id} {jti}", "expires": expires})
        except DuplicateKeyError:
            return False
        return True

    def purge_expired(self) -> None:
        cutoff = {"expires": {"$lt": now()}}
        for collection in (
            REQUESTS,
            CODES,
            ASSERTIONS,
            LAUNCHES,
            TOKENS,
            REFRESH_USES,
            LOGIN_FAILURES,
        ):
            self.db[collection].delete_many(cutoff)

    # -- tokens ------------------------------------------------------------------------------

    def put_token(self, token: str, record: Record) -> None:
        self.db[TOKENS].insert_one({"_id": secret_hash(token), **record})

    def token(self, token: str) -> Record | None:
        key = secret_hash(token)
        cached = self._token_cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            record = cached[1]
        else:
            # A revocation landing between this read and the caching below would otherwise
            # leave the old record cached: a revoked token accepted for the cache's lifetime
            # (a revoked websocket stayed open past 10 s in a full test run).
            generation = self._token_generation
            record = self.db[TOKENS].find_one({"_id": key})
            if (
                record is not None
                and self._token_cache_seconds > 0
                and generation == self._token_generation
            ):
                if len(self._token_cache) >= TOKEN_CACHE_LIMIT:
                    self.forget_cached_tokens()
                expires_at = time.monotonic() + self._token_cache_seconds
                self._token_cache[key] = (expires_at, record)
        if record is None or record.get("revoked") or record["expires"] <= now():
            return None
        return record

    def forget_cached_tokens(self) -> None:
        self._token_generation += 1
        self._token_cache.clear()

    def token_record(self, token: str) -> Record | None:
        """The stored record even when revoked or expired (refresh-token reuse detection)."""
        return self.db[TOKENS].find_one({"_id": secret_hash(token)})

    def first_use_of_refresh(self, key: str, expires: datetime) -> bool:
        """Claim a refresh token for one rotation. A unique insert has exactly one winner,
        even on FerretDB whose guarded updates are not atomic under races."""
        try:
            self.db[REFRESH_USES].insert_one({"_id": key, "expires": expires})
        except DuplicateKeyError:
            return False
        self.db[TOKENS].update_one({"_id": key}, {"$set": {"revoked": True, "rotated": True}})
        self.forget_cached_tokens()
        return True

    def revoke_token(self, key: str) -> None:
        self.db[TOKENS].update_one({"_id": key}, {"$set": {"revoked": True}})
        self.forget_cached_tokens()

    def revoke_grant(self, grant: str) -> None:
        self.db[TOKENS].update_many({"grant": grant}, {"$set": {"revoked": True}})
        self.forget_cached_tokens()

    # -- failed logins (rate limiting, shared by every worker process) ----------------------

    def add_login_failure(self, keys: list[str], expires: datetime) -> None:
        moment = now()
        self.db[LOGIN_FAILURES].insert_many(
            [{"key": k, "ts": moment, "expires": expires} for k in keys]
        )

    def login_failures(self, key: str, since: datetime) -> list[datetime]:
        """Times of the failures recorded for `key` since `since`, oldest first."""
        found = self.db[LOGIN_FAILURES].find(
            {"key": key, "ts": {"$gte": since}}, {"ts": 1}, sort=[("ts", ASCENDING)]
        )
        return [doc["ts"] for doc in found]

    def clear_login_failures(self, key: str) -> None:
        self.db[LOGIN_FAILURES].delete_many({"key": key})

    # -- signing keys ------------------------------------------------------------------------

    def keys(self) -> list[Record]:
        """Newest first."""
        return list(self.db[KEYS].find({}, sort=[("created", -1), ("_id", -1)]))

    def add_key(self, record: Record) -> None:
        self.db[KEYS].insert_one(record)
