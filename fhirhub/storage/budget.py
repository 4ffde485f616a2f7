"""A time budget for the reads a client's query decides the size of (searches, history).

FerretDB sorts in Go after fetching every matching document, and without a server-side time
limit it even reads a large result to its end after the client's limit is reached. A search
over 120k Observations ran for minutes, kept running in the database after the request had
given up (twice: pymongo retries a read after a socket timeout), and slowed every other
request meanwhile. With `maxTimeMS` the database stops the query itself: the request gets a
400 too-costly OperationOutcome (narrow the search) and nothing keeps running. As a side
effect FerretDB then cancels, instead of draining, the rest of a limited query (first 11
of 120k: 7 s -> 0.06 s).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pymongo.errors import ExecutionTimeout

from fhirhub.fhir.errors import TooCostly

DEFAULT_BUDGET_MS = 20_000


@contextmanager
def within_budget(what: str, budget_ms: int) -> Iterator[None]:
    try:
        yield
    except ExecutionTimeout:
        raise TooCostly(
            f"{what} needs more than the database's {budget_ms / 1000:g} s query budget "
            "(FHIRHUB_QUERY_TIMEOUT_MS) on this many resources; narrow it with more "
            "criteria or _since"
        ) from None
