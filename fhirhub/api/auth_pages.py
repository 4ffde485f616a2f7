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

from fhirhub.api.requests import hub
from fhirhub.auth.authorize import PageError, RedirectError
from fhirhub.auth.careteams import care_team_patients
from fhirhub.auth.scopes import Scopes
from fhirhub.storage.auth_store import Record

TEMPLATES = Path(__file__).resolve().parent.parent / "auth" / "templates"
bp = Blueprint("auth_pages", __name__, template_folder=str(TEMPLATES))
COOKIE = "fhirhub_auth"
PICKER_LIMIT = 50
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
    request_id = _flow().start(request.values.to_dict())
    return redirect(url_for("auth_pages.login", req=request_id), 302)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | tuple[str, int]:
    record = _flow().pending(_req())
    page = {"req": _req(), "client_name": record["client_name"]}
    if request.method == "GET":
        return render_template("login.html", **page), 200
    session = _flow().login(
        _req(), request.form.get("username", ""), request.form.get("password", "")
    )
    if session is None:
        return render_template(
            "login.html", error="Unknown username or wrong password.", **page
        ), 401
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


def _candidates(record: Record) -> list[dict[str, str]]:
    the_hub = hub()
    user = the_hub.auth.store.user(record["user"]) or {}
    if user.get("admin"):
        patients = the_hub.search.find_resources("Patient", "", PICKER_LIMIT)
    else:
        ids = care_team_patients(the_hub.search, user.get("fhir_user"))
        query = f"_id={','.join(ids)}"
        patients = the_hub.search.find_resources("Patient", query, PICKER_LIMIT) if ids else []
    return [_patient_row(p) for p in patients]


def _patient_row(patient: dict[str, Any]) -> dict[str, str]:
    names = patient.get("name") or [{}]
    first = names[0] if isinstance(names[0], dict) else {}
    text = first.get("text") or " ".join([*first.get("given", []), first.get("family", "")])
    return {
        "id": patient["id"],
        "name": text.strip() or "(no name)",
        "birth": patient.get("birthDate", ""),
    }


@bp.route("/pick", methods=["GET", "POST"])
def pick() -> Response | tuple[str, int]:
    record = _bound()
    patients = _candidates(record)
    page = {"req": _req(), "client_name": record["client_name"], "patients": patients}
    if request.method == "GET":
        return render_template("picker.html", **page), 200
    chosen = request.form.get("patient", "")
    if chosen not in {p["id"] for p in patients}:
        return render_template(
            "picker.html", error="Choose one of the listed patients.", **page
        ), 400
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
