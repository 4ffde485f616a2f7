"""A time budget for the reads a client's query decides the size of (searches, history).

FerretDB sorts in Go after fetching every matching document, and without a server-side time
limit it even reads a large result to its end after the client's limit is reached. A search
over 120k Observations ran for minutes, kept running in the database after the request had
given up (twice: pymongo retries a read after a socket timeout), and slowed every other
request meanwhile. With `maxTimeMS` the database stops the query itself: the request gets a
400 too-costly OperationOutcome (narrow the search) and nothing keeps running. As a side
effect FerretDB then cancels, instead of draining, the rest of a limited query (first 11
of 120k: 7 s -> 0.06 s).

FerretDB does not always report the expiry: of 100 reads of 300 documents at 2 ms, 97
raised MaxTimeMSExpired, 2 were whole, and 1 silently returned 24 documents; others ended
in CursorNotFound (the cursor cancelled between batches). A read is therefore trusted only
when it finished within the budget by the client's own clock: the server starts its clock
after ours, so a read we saw end in time cannot have been cut short by its deadline.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from pymongo.errors import CursorNotFound, ExecutionTimeout

from fhirhub.fhir.errors import TooCostly

DEFAULT_BUDGET_MS = 20_000


@contextmanager
def within_budget(what: str, budget_ms: int) -> Iterator[None]:
    """Run reads limited by `maxTimeMS=budget_ms` whose results are used only if whole."""
    started = time.monotonic()
    try:
        yield
    except ExecutionTimeout:
        raise _too_costly(what, budget_ms) from None
    except CursorNotFound:
        if _elapsed_ms(started) < budget_ms:
            raise  # not the deadline: a real fault
        raise _too_costly(what, budget_ms) from None
    if _elapsed_ms(started) >= budget_ms:
        raise _too_costly(what, budget_ms)  # possibly cut short without an error


def _elapsed_ms(started: float) -> float:
    return (time.monotonic() - started) * 1000


def _too_costly(what: str, budget_ms: int) -> TooCostly:
    return TooCostly(
        f"{what} needs more than the database's {budget_ms / 1000:g} s query budget "
        "(FHIRHUB_QUERY_TIMEOUT_MS) on this many resources; narrow it with more "
        "criteria or _since"
    )
