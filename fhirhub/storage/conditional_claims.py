"""Claims that make conditional create, update and delete race-free.

"Search; if nothing matches, create" is two steps, and FerretDB 1.24 has no multi-document
transactions and does not run guarded updates atomically (delivery_leases.py): 16 parallel
conditional creates with one If-None-Exist made 2 resources. So every conditional write
first claims its criteria: it inserts a claim whose `_id` is a hash of the resource type and
the normalised criteria (a unique insert, which PostgreSQL's unique index makes atomic:
exactly one of any number of contenders gets it), searches again, writes, and deletes the
claim. A contender finds the `_id` taken, waits until it is deleted, claims it and searches:
it finds what the first one wrote, because that was committed before the claim went.

Normalised: the parameters percent-decoded and sorted, so `a=1&b=2`, `b=2&a=1` and
`Patient?a=1` share one claim. Different criteria that happen to match the same resources
are not serialised (R4 leaves conditional semantics to the criteria given).

A holder that dies leaves its claim behind. Contenders wait at most WAIT_SECONDS (then 409
with Retry-After); once the claim is STALE_AFTER old, one of them takes it over: it inserts
a "breaker" document named after the dead claim (again exactly one contender succeeds) and
deletes the dead claim. A live holder never starts its write once it has held the claim for
HOLD_LIMIT (half of STALE_AFTER; it answers 409 instead), so a takeover cannot overlap a
live write unless the servers' clocks differ by more than that.

The record's schema is a mongoengine Document (validated before every insert); the inserts
and deletes go through the hub's own pymongo database, because the atomicity above rests
on plain unique inserts and mongoengine's connection registry is global per process.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlencode

from mongoengine import DateTimeField, Document, StringField
from mongoengine.queryset import QuerySet
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError, PyMongoError

from fhirhub.fhir.errors import Conflict
from fhirhub.storage.store import utc_now_ms

log = logging.getLogger(__name__)

CLAIMS = "conditional_claims"
STALE_AFTER = timedelta(seconds=60)
HOLD_LIMIT = STALE_AFTER / 2
WAIT_SECONDS = 10.0
BREAKERS_KEPT = timedelta(hours=1)


class ConditionalClaim(Document):
    """One claim (or the breaker of a dead one, with `breaks` set)."""

    meta = {"collection": CLAIMS}
    id = StringField(primary_key=True)  # sha256 hex of the criteria; breaker: "<key>!<token>"
    criteria = StringField(required=True, max_length=300)  # shortened, for logs only
    token = StringField(required=True)  # this holder
    taken = DateTimeField(required=True)
    breaks = StringField()  # breaker: the token of the claim taken over


def normalised(resource_type: str, query_string: str) -> str:
    query = query_string.lstrip("?").removeprefix(f"{resource_type}?")
    pairs = sorted(parse_qsl(query, keep_blank_values=True))
    return f"{resource_type}?{urlencode(pairs)}"


class ClaimStore:
    def __init__(self, db: Database, clock: Callable[[], datetime] = utc_now_ms):
        self.coll = db[CLAIMS]
        self.clock = clock
        self.wait_seconds = WAIT_SECONDS

    def _query(self) -> QuerySet:
        return QuerySet(ConditionalClaim, self.coll)

    @contextmanager
    def holding(self, targets: list[tuple[str, str]]) -> Iterator[list[ConditionalClaim]]:
        """Claim the criteria of each (resource type, query string), in one global order
        (two transactions needing the same two claims cannot deadlock), for the block."""
        keys: dict[str, str] = {}
        for resource_type, query_string in targets:
            text = normalised(resource_type, query_string)
            keys[hashlib.sha256(text.encode()).hexdigest()] = text
        held: list[ConditionalClaim] = []
        try:
            for key in sorted(keys):
                held.append(self._acquire(key, keys[key]))
            yield held
        finally:
            for claim in held:
                self._release(claim)

    def held(self, targets: list[tuple[str, str]]) -> bool:
        """Is any of these claimed right now (one point read each, no write)?"""
        for resource_type, query_string in targets:
            text = normalised(resource_type, query_string)
            key = hashlib.sha256(text.encode()).hexdigest()
            if self.coll.find_one({"_id": key}, {"_id": 1}) is not None:
                return True
        return False

    def check(self, held: list[ConditionalClaim]) -> None:
        """Raise rather than write once a claim may be presumed dead by others."""
        now = self.clock()
        for claim in held:
            if now - claim.taken >= HOLD_LIMIT:
                raise _retry(f"the conditional write on {claim.criteria} took too long")

    def _acquire(self, key: str, criteria: str) -> ConditionalClaim:
        token = uuid.uuid4().hex
        deadline = time.monotonic() + self.wait_seconds
        delay = 0.002
        while True:
            claim = ConditionalClaim(id=key, criteria=criteria[:300], token=token)
            claim.taken = self.clock()
            if self._insert(claim):
                return claim
            holder = self._query().filter(pk=key).first()
            if holder is not None and self.clock() - holder.taken >= STALE_AFTER:
                self._break(holder, token)
                continue
            if holder is not None and time.monotonic() >= deadline:
                raise _retry(f"another conditional write on {criteria[:200]} is in progress")
            if holder is not None:
                time.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, 0.05)

    def _insert(self, claim: ConditionalClaim) -> bool:
        claim.validate()
        try:
            self.coll.insert_one(claim.to_mongo().to_dict())
        except DuplicateKeyError:
            return False
        return True

    def _break(self, dead: ConditionalClaim, token: str) -> None:
        breaker = ConditionalClaim(
            id=f"{dead.pk}!{dead.token}",
            criteria=dead.criteria,
            token=token,
            taken=self.clock(),
            breaks=dead.token,
        )
        if not self._insert(breaker):
            return  # another contender is taking it over
        self._query().filter(pk=dead.pk, token=dead.token).delete()
        log.warning(
            "conditional claim on %s, held since %s by a process presumed dead, taken over",
            dead.criteria,
            dead.taken.isoformat(),
        )
        old = self.clock() - BREAKERS_KEPT
        self._query().filter(breaks__exists=True, taken__lt=old).delete()

    def _release(self, claim: ConditionalClaim) -> None:
        try:
            self._query().filter(pk=claim.pk, token=claim.token).delete()
        except PyMongoError:
            # Left behind: taken over once it is STALE_AFTER old.
            log.exception("could not release the conditional claim on %s", claim.criteria)


def _retry(diagnostics: str) -> Conflict:
    error = Conflict(f"{diagnostics}; retry the request")
    error.headers["Retry-After"] = "1"
    return error
