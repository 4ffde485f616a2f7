"""The pages of an authorization: /auth/authorize -> login -> patient picker -> consent.

Plain HTML forms without scripts. Every page after login requires the HttpOnly session
cookie set at login (SameSite=Lax, so another site cannot post the forms with it) and is
served with frame and caching protections (the consent button must not be clickjacked).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from fhirhub.api.auth import events as auth_events
from fhirhub.api.fhir.requests import hub
from fhirhub.auth.authorize import PageError, RedirectError
from fhirhub.auth.picker import MAX_TEXT, SEARCH_BY
from fhirhub.auth.scopes import Scopes
from fhirhub.auth.throttle import LoginThrottled
from fhirhub.storage.auth_store import Record

TEMPLATES = Path(__file__).resolve().parents[2] / "auth" / "templates"
bp = Blueprint("auth_pages", __name__, template_folder=str(TEMPLATES))
COOKIE = "fhirhub_auth"
LETTERS = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}


@bp.after_request
def _protect(response: Response) -> Response:
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = "default-src 'self'; frame-ancestors 'none'"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.errorhandler(PageError)
def _page_error(error: PageError) -> tuple[str, int]:
    return render_template("error.html", message=str(error)), 400


@bp.errorhandler(RedirectError)
def _redirect_error(error: RedirectError) -> Response:
    return redirect(error.url(), 302)


def _flow() -> Any:
    return hub().auth.flow


def _req() -> str:
    return request.values.get("req", "")


def _bound() -> Record:
    """The pending request, for the browser that logged in only."""
    record: Record = _flow().pending(_req(), request.cookies.get(COOKIE, ""))
    return record


@bp.route("/authorize", methods=["GET", "POST"])
def authorize() -> Response:
    args = request.values.to_dict()
    try:
        request_id = _flow().start(args)
    except (PageError, RedirectError) as error:
        problem = str(error) if isinstance(error, PageError) else error.description
        client_id = args.get("client_id", "")[:200] or None
        auth_events.record(
            "authorize", "refused", f"request refused: {problem}", client_id=client_id
        )
        raise
    return redirect(url_for("auth_pages.login", req=request_id), 302)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | tuple[str, int] | tuple[str, int, dict[str, str]]:
    record = _flow().pending(_req())
    page = {"req": _req(), "client_name": record["client_name"]}
    if request.method == "GET":
        return render_template("login.html", **page), 200
    username = request.form.get("username", "")
    client_id = record["client_id"]
    # Audited under the name tried only when such a user exists: what was typed into the
    # username field is sometimes a password.
    known = hub().auth.store.user(username) if username else None
    named = username if known else None
    try:
        session = _flow().login(
            _req(), username, request.form.get("password", ""), request.remote_addr or ""
        )
    except LoginThrottled as locked:
        minutes = max(1, round(locked.retry_after / 60))
        message = f"Too many failed sign-ins. Try again in about {minutes} minute(s)."
        auth_events.record(
            "login", "refused", "locked out: too many failures", client_id=client_id, user=named
        )
        headers = {"Retry-After": str(locked.retry_after)}
        return render_template("login.html", error=message, **page), 429, headers
    if session is None:
        problem = "wrong password" if known else "unknown username"
        auth_events.record("login", "refused", problem, client_id=client_id, user=named)
        return render_template(
            "login.html", error="Unknown username or wrong password.", **page
        ), 401
    fhir_user = (known or {}).get("fhir_user")
    auth_events.record(
        "login", "ok", "signed in", client_id=client_id, user=username, fhir_user=fhir_user
    )
    response = redirect(url_for("auth_pages.next_step", req=_req()), 303)
    secure = hub().settings.auth_base.startswith("https:")
    response.set_cookie(COOKIE, session, httponly=True, samesite="Lax", secure=secure, path="/auth")
    return response


@bp.get("/next")
def next_step() -> Response:
    record = _bound()
    if _flow().needs_patient(record):
        user = hub().auth.store.user(record["user"]) or {}
        own = str(user.get("fhir_user") or "")
        if not own.startswith("Patient/"):
            return redirect(url_for("auth_pages.pick", req=_req()), 303)
        _flow().set_patient(record["_id"], own.split("/", 1)[1])
    return redirect(url_for("auth_pages.consent", req=_req()), 303)


def _picker_page(record: Record, error: str = "") -> tuple[str, int]:
    picker = hub().auth.picker
    user = hub().auth.store.user(record["user"]) or {}
    text = request.values.get("q", "")[:MAX_TEXT]
    by = request.values.get("by", "name")
    by = by if by in SEARCH_BY else "name"
    raw_offset = request.values.get("offset", "0")
    offset = int(raw_offset) if raw_offset.isdigit() else 0
    found = picker.page(user, text, by, offset)

    def page_url(to: int | None) -> str | None:
        if to is None:
            return None
        return url_for("auth_pages.pick", req=_req(), q=text, by=by, offset=to)

    page = {
        "req": _req(),
        "client_name": record["client_name"],
        "patients": found.patients,
        "total": found.total,
        "q": text,
        "by": by,
        "offset": offset,
        "next_url": page_url(found.next_offset),
        "previous_url": page_url(found.previous_offset if offset else None),
        "admin": picker.allowed(user) is None,
        "error": error or found.problem,
    }
    return render_template("picker.html", **page), 400 if error else 200


@bp.route("/pick", methods=["GET", "POST"])
def pick() -> Response | tuple[str, int]:
    record = _bound()
    if request.method == "GET":
        return _picker_page(record)
    chosen = request.form.get("patient", "")
    user = hub().auth.store.user(record["user"]) or {}
    # Checked against the user's own patients, not against the page shown: the form may
    # come from any page (or be forged).
    if not chosen or not hub().auth.picker.may_pick(user, chosen):
        return _picker_page(record, "Choose one of the listed patients.")
    _flow().set_patient(record["_id"], chosen)
    return redirect(url_for("auth_pages.consent", req=_req()), 303)


@bp.route("/consent", methods=["GET", "POST"])
def consent() -> Response | tuple[str, int]:
    record = _bound()
    scopes = Scopes.parse(record["scope"])
    if _flow().needs_patient(record):
        return redirect(url_for("auth_pages.pick", req=_req()), 303)
    if request.method == "POST":
        named = {r.resource_type for r in scopes.rules}
        kept = set(request.form.getlist("type"))
        approve = request.form.get("decision") == "allow"
        withheld = ", ".join(sorted(named - kept))
        auth_events.record(
            "authorize",
            "ok" if approve else "refused",
            ("user allowed" + (f", withholding {withheld}" if withheld else ""))
            if approve
            else "user declined",
            client_id=record["client_id"],
            user=record["user"],
            patient=record.get("patient"),
            details={"scope": str(scopes.without_types(named - kept))} if approve else {},
        )
        return redirect(_flow().decide(record, approve, named - kept), 302)
    types: dict[str, set[str]] = {}
    for rule in scopes.rules:
        types.setdefault(rule.resource_type, set()).update(rule.actions)
    rows = [
        {
            "name": name,
            "label": "All record types" if name == "*" else name,
            "actions": ", ".join(LETTERS[a] for a in "cruds" if a in actions),
        }
        for name, actions in types.items()
    ]
    extras = [s for s in scopes.items if s not in {r.text for r in scopes.rules}]
    page = {
        "req": _req(),
        "client_name": record["client_name"],
        "username": record["user"],
        "patient": f"Patient/{record['patient']}" if record.get("patient") else "",
        "types": rows,
        "extras": extras,
    }
    return render_template("consent.html", **page), 200
