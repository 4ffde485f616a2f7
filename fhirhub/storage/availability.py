"""Which database errors mean "the database is unavailable" (503, retry later) rather than
a fault in the request or the server (500).

pymongo raises ConnectionFailure (and its subclasses: AutoReconnect, NetworkTimeout,
ServerSelectionTimeoutError) when it cannot reach the server. FerretDB, when it is up but
its PostgreSQL is not (killed, restarting, in crash recovery), answers the command with an
InternalError whose message is PostgreSQL's or the pgx driver's; those are recognised by
SQLSTATE class 08 (connection exception) and 57P01-57P03 (terminated, crash shutdown,
cannot connect now), or by the driver's own connection-failure wording.
"""

from __future__ import annotations

import re

from pymongo.errors import ConnectionFailure, OperationFailure

_BACKEND_DOWN = re.compile(
    r"SQLSTATE (08[0-9A-Z]{3}|57P0[123])"
    r"|failed to connect to"
    r"|connection refused"
    r"|conn closed"
    r"|unexpected EOF"
    r"|broken pipe"
    r"|connection reset by peer"
    r"|closed pool"
    r"|the database system is (starting up|shutting down|in recovery mode)",
    re.IGNORECASE,
)
FERRETDB_INTERNAL_ERROR = 1


def database_unavailable(error: BaseException) -> bool:
    if isinstance(error, ConnectionFailure):
        return True
    if isinstance(error, OperationFailure):
        return error.code in (FERRETDB_INTERNAL_ERROR, None) and bool(
            _BACKEND_DOWN.search(str(error))
        )
    return False
