"""Rate limiting of failed password logins, per username and per client address.

Each failure is a row in the database, not a counter in process memory, so every gunicorn
worker (and every host behind a load balancer) sees the same attempts. The window slides:
a key is locked while it has `limit` failures younger than `window` seconds, and unlocks
by itself when the oldest of them ages out. While locked even the right password is
refused, or guessing could simply continue. A successful login clears the username's
failures, never the address's: succeeding on one's own account must not reset the
counter an attacker guessing other accounts from the same address runs into.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from fhirhub.config import Settings
from fhirhub.storage.auth_store import AuthStore, now

MAX_KEY = 200  # usernames are whatever a form sends: bound what is stored


class LoginThrottled(Exception):
    """Too many recent failures; try again after `retry_after` seconds."""

    def __init__(self, retry_after: int):
        super().__init__(f"too many failed sign-ins; try again in {retry_after} s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class LoginThrottle:
    store: AuthStore
    max_per_user: int
    max_per_address: int
    window: int  # seconds

    @classmethod
    def from_settings(cls, store: AuthStore, settings: Settings) -> LoginThrottle:
        return cls(
            store,
            settings.auth_login_max_failures,
            settings.auth_login_max_failures_ip,
            settings.auth_login_window,
        )

    def check(self, username: str, address: str) -> None:
        """Raise LoginThrottled when the username or the address is locked out."""
        since = now() - timedelta(seconds=self.window)
        wait = 0.0
        for key, limit in self._keys(username, address):
            failures = self.store.login_failures(key, since)
            if limit and len(failures) >= limit:
                # Unlocked once enough of the failures have left the window.
                unlock = failures[len(failures) - limit] + timedelta(seconds=self.window)
                wait = max(wait, (unlock - now()).total_seconds())
        if wait > 0:
            raise LoginThrottled(max(1, math.ceil(wait)))

    def failed(self, username: str, address: str) -> None:
        keys = [key for key, limit in self._keys(username, address) if limit]
        if keys:
            expires = now() + timedelta(seconds=self.window)
            self.store.add_login_failure(keys, expires)

    def succeeded(self, username: str) -> None:
        self.store.clear_login_failures(_user_key(username))

    def _keys(self, username: str, address: str) -> list[tuple[str, int]]:
        return [
            (_user_key(username), self.max_per_user),
            (f"ip:{address[:MAX_KEY]}", self.max_per_address),
        ]


def _user_key(username: str) -> str:
    return f"user:{username[:MAX_KEY]}"
