"""Signing keys for id_tokens: RSA, generated at first use, stored in the database by kid.

Rotation adds a new key that signs from then on; the JWKS keeps publishing the previous one
so tokens signed just before a rotation still verify. Keys live in the database (not in a
process) so every gunicorn worker signs with the same current key.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from joserfc import jwt
from joserfc.jwk import Key, KeySet, RSAKey

from fhirhub.storage.auth_store import AuthStore, now

ALGORITHM = "RS256"
PUBLISHED = 2  # current + previous
CACHE_SECONDS = 30.0


class KeyRing:
    def __init__(self, store: AuthStore):
        self.store = store
        self._cached: list[RSAKey] = []
        self._loaded_at = 0.0

    def _keys(self) -> list[RSAKey]:
        # Re-read now and then so a rotation done by the CLI reaches running workers.
        if not self._cached or time.monotonic() - self._loaded_at > CACHE_SECONDS:
            records = self.store.keys()
            if not records:
                self.rotate()
                records = self.store.keys()
            self._cached = [RSAKey.import_key(r["jwk"]) for r in records[:PUBLISHED]]
            self._loaded_at = time.monotonic()
        return self._cached

    def rotate(self) -> str:
        kid = f"{now():%Y%m%d%H%M%S}-{secrets.token_hex(4)}"
        key = RSAKey.generate_key(
            2048, parameters={"kid": kid, "use": "sig", "alg": ALGORITHM}, private=True
        )
        self.store.add_key({"_id": kid, "jwk": key.as_dict(private=True), "created": now()})
        self._cached = []
        return kid

    @property
    def current(self) -> RSAKey:
        return self._keys()[0]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.as_dict(private=False) for k in self._keys()]}

    def sign(self, claims: dict[str, Any]) -> str:
        key = self.current
        header = {"alg": ALGORITHM, "kid": key.kid, "typ": "JWT"}
        return jwt.encode(header, claims, key, algorithms=[ALGORITHM])

    def verify(self, token: str) -> dict[str, Any]:
        """Claims of a token we signed (any published kid); raises joserfc errors."""
        keys = KeySet(list[Key](self._keys()))
        return dict(jwt.decode(token, keys, algorithms=[ALGORITHM]).claims)
