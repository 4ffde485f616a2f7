"""Refresh-token rotation with reuse detection, and rate limiting of failed sign-ins."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask.testing import FlaskClient

from fhirhub.app import create_app
from fhirhub.hub import Hub
from fhirhub.storage.auth_store import LOGIN_FAILURES, TOKENS, AuthStore, now, secret_hash
from tests.auth_helpers import (
    PASSWORD,
    authorize_params,
    clinical_data,
    code_from,
    pkce,
    register_app,
    sign_in,
    token_form,
    url,
)


def _refresh(client: FlaskClient, refresh_token: str, **extra: str) -> Any:
    form = {"grant_type": "refresh_token", "client_id": "app", "refresh_token": refresh_token}
    return client.post("/auth/token", data={**form, **extra})


def _signed_in_tokens(client: FlaskClient, hub: Hub) -> dict[str, Any]:
    verifier, challenge = pkce()
    scope = "launch/patient offline_access patient/*.rs"
    callback = sign_in(
        client, url("/auth/authorize", **authorize_params(hub, scope, challenge)), "alice"
    )
    response = client.post("/auth/token", data=token_form(code_from(callback), verifier))
    assert response.status_code == 200
    body: dict[str, Any] = response.get_json()
    return body


def test_every_refresh_rotates_and_reuse_revokes_the_family(
    auth_client: FlaskClient, auth_hub: Hub
) -> None:
    clinical_data(auth_hub)
    register_app(auth_hub)
    first = _signed_in_tokens(auth_client, auth_hub)
    second = _refresh(auth_client, first["refresh_token"]).get_json()
    third = _refresh(auth_client, second["refresh_token"], scope="patient/Patient.rs").get_json()
    assert len({first["refresh_token"], second["refresh_token"], third["refresh_token"]}) == 3
    assert third["scope"] == "patient/Patient.rs"
    # The refresh token keeps the grant's scope: a later refresh may ask for it all again.
    fourth = _refresh(auth_client, third["refresh_token"]).get_json()
    assert fourth["scope"] == first["scope"]
    newest = {"Authorization": f"Bearer {fourth['access_token']}"}
    assert auth_client.get("/fhir/Patient/a", headers=newest).status_code == 200

    # An old (rotated) refresh token comes back: someone else holds a copy. Everything
    # issued for this authorization stops working, the newest tokens included.
    replay = _refresh(auth_client, second["refresh_token"])
    assert replay.status_code == 400 and replay.get_json()["error"] == "invalid_grant"
    assert auth_client.get("/fhir/Patient/a", headers=newest).status_code == 401
    after = _refresh(auth_client, fourth["refresh_token"])
    assert after.status_code == 400 and after.get_json()["error"] == "invalid_grant"


def test_rotation_keeps_the_grant_lifetime(auth_client: FlaskClient, auth_hub: Hub) -> None:
    clinical_data(auth_hub)
    register_app(auth_hub)
    first = _signed_in_tokens(auth_client, auth_hub)
    ends = now() + timedelta(hours=1)  # as if the grant were nearly 30 days old
    key = secret_hash(first["refresh_token"])
    auth_hub.db[TOKENS].update_one({"_id": key}, {"$set": {"expires": ends}})
    second = _refresh(auth_client, first["refresh_token"]).get_json()
    successor = auth_hub.auth.store.token(second["refresh_token"])
    assert successor is not None and abs(successor["expires"].timestamp() - ends.timestamp()) < 2


def _start(client: FlaskClient, hub: Hub) -> str:
    _, challenge = pkce()
    params = authorize_params(hub, "launch/patient patient/*.rs", challenge)
    location = client.get(url("/auth/authorize", **params)).headers["Location"]
    return location.split("req=")[1]


def _login(client: FlaskClient, request_id: str, user: str, password: str, ip: str) -> Any:
    return client.post(
        "/auth/login",
        data={"req": request_id, "username": user, "password": password},
        environ_base={"REMOTE_ADDR": ip},
    )


def test_failed_logins_lock_the_username_across_workers(
    auth_client: FlaskClient, auth_hub: Hub
) -> None:
    clinical_data(auth_hub)
    register_app(auth_hub)
    other_worker = create_app(auth_hub.settings, auth_hub).test_client()
    request_id = _start(auth_client, auth_hub)
    for attempt in range(5):
        # Alternate between two app instances and addresses: the count is in the database.
        http = auth_client if attempt % 2 else other_worker
        failed = _login(http, request_id, "alice", "wrong", f"10.0.0.{attempt}")
        assert failed.status_code == 401
    locked = _login(auth_client, request_id, "alice", PASSWORD, "10.0.0.9")
    assert locked.status_code == 429
    assert 0 < int(locked.headers["Retry-After"]) <= 300
    assert "Too many failed sign-ins" in locked.get_data(as_text=True)
    # Other users are not affected by alice's lockout.
    assert _login(auth_client, request_id, "drheart", PASSWORD, "10.0.0.9").status_code == 303

    # The lockout ends by itself once the failures leave the window.
    old = now() - timedelta(seconds=301)
    auth_hub.db[LOGIN_FAILURES].update_many({}, {"$set": {"ts": old}})
    assert (
        _login(
            auth_client, _start(auth_client, auth_hub), "alice", PASSWORD, "10.0.0.9"
        ).status_code
        == 303
    )


def test_failed_logins_lock_the_address(auth_client: FlaskClient, auth_hub: Hub) -> None:
    clinical_data(auth_hub)
    register_app(auth_hub)
    request_id = _start(auth_client, auth_hub)
    limit = auth_hub.settings.auth_login_max_failures_ip
    for attempt in range(limit):  # one guess each at many names: no username locks
        assert (
            _login(auth_client, request_id, f"user{attempt}", "x", "192.0.2.7").status_code == 401
        )
    assert _login(auth_client, request_id, "alice", PASSWORD, "192.0.2.7").status_code == 429
    assert _login(auth_client, request_id, "alice", PASSWORD, "192.0.2.8").status_code == 303


def test_success_clears_the_username_count(auth_client: FlaskClient, auth_hub: Hub) -> None:
    clinical_data(auth_hub)
    register_app(auth_hub)
    for _ in range(2):
        request_id = _start(auth_client, auth_hub)
        for _ in range(4):
            assert _login(auth_client, request_id, "alice", "wrong", "10.1.0.1").status_code == 401
        assert _login(auth_client, request_id, "alice", PASSWORD, "10.1.0.1").status_code == 303


def test_a_revocation_during_a_token_lookup_is_not_cached_over(auth_hub: Hub) -> None:
    """The lookup read the record, the revocation cleared the cache, then the lookup cached
    what it had read: the revoked token was accepted for the cache's lifetime."""
    register_app(auth_hub)
    token = auth_hub.auth.issue_direct("app", "user/*.read", user=None)["access_token"]
    store = AuthStore(auth_hub.db, token_cache_seconds=60)
    real_db = store.db

    class RevokingDuringRead:
        def __getitem__(self, name: str) -> Any:
            collection = real_db[name]
            if name != TOKENS:
                return collection

            class Tokens:
                def find_one(self, *args: Any, **kwargs: Any) -> Any:
                    found = collection.find_one(*args, **kwargs)
                    store.db = real_db
                    store.revoke_token(secret_hash(token))  # lands between read and cache
                    return found

            return Tokens()

    store.db = RevokingDuringRead()  # type: ignore[assignment]
    assert store.token(token) is not None  # the read began before the revocation
    assert store.token(token) is None  # and what it read was not cached over it
