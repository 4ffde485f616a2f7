"""Password hashing with scrypt (memory-hard, in the standard library: no native extra)."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets

# RFC 7914 interactive-login parameters: ~16 MiB and tens of milliseconds per check.
N, R, P = 2**14, 8, 1
LENGTH = 32


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, dklen=LENGTH)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


@functools.cache
def dummy_hash() -> str:
    """Checked when the username is unknown so timing does not reveal which names exist."""
    return hash_password(secrets.token_hex(8))
