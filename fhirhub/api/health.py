"""GET /healthz (plain JSON, not FHIR): 200 while the database answers, 503 otherwise.

`parts` gives the state of each part: `api` (this web process, answering), `database` (a
ping through FerretDB, which reaches PostgreSQL, with a timeout of HEALTH_TIMEOUT_MS so the
answer comes within a second), and under `fhirhub serve` its supervisor's view of
`postgresql`, `ferretdb` and `worker` (up, restarting, stopped; restarts, last exit).
`status` is `ok`, `degraded` (the database answers, another part is down) or `unavailable`.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from fhirhub.hub import Hub
from fhirhub.supervision.board import UP, board_path, read_board

bp = Blueprint("health", __name__)

SUPERVISED = ("postgresql", "ferretdb", "worker")


def _instant(epoch: float | None) -> str | None:
    if not epoch:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _supervised(part: dict[str, Any]) -> dict[str, Any]:
    summary = {
        "state": part.get("state"),
        "pid": part.get("pid"),
        "since": _instant(part.get("since")),
    }
    summary["restarts"] = part.get("restarts", 0)
    if part.get("last_exit"):
        summary["last_exit"] = part["last_exit"]
    if part.get("next_attempt"):
        summary["next_attempt"] = _instant(part["next_attempt"])
    return summary


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    hub: Hub = current_app.extensions["fhirhub"]
    problem = hub.database_problem()
    parts: dict[str, dict[str, Any]] = {
        "api": {"state": UP, "pid": os.getpid()},
        "database": {"state": UP} if problem is None else {"state": "down", "error": problem},
    }
    board = read_board(board_path(hub.settings.var_dir)) or {}
    for name in SUPERVISED:
        if name in board:
            parts[name] = _supervised(board[name])
    if problem is not None:
        status, code = "unavailable", 503
    elif all(part["state"] == UP for part in parts.values()):
        status, code = "ok", 200
    else:
        status, code = "degraded", 200
    return jsonify(status=status, database=problem or "ok", parts=parts), code
