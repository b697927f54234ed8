"""Password hashing with scrypt (slow, salted, memory-hard) and constant-time checks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

_N, _R, _P = 2**14, 8, 1


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    encoded = base64.b64encode(salt).decode(), base64.b64encode(key).decode()
    return f"scrypt${_N}${_R}${_P}${encoded[0]}${encoded[1]}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key)
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


def generate_password() -> str:
    return secrets.token_urlsafe(18)


class RecentVerifications:
    """Remembers for a short while which secrets matched which stored hashes.

    The slow hash is what makes a password guess expensive; a client that logs in again
    and again with the same right password (``docker login`` then a token request per
    pull or push) pays it once per ``ttl_seconds``. Only successes are remembered, so
    every wrong guess still pays the full hash. An entry is an HMAC (under a random key
    of this process) of the stored hash and the secret, never the secret: a changed
    password has a new stored hash and never matches an old entry. Callers still check
    everything else (disabled, expired, revoked) on every use.
    """

    def __init__(self, ttl_seconds: float = 60.0, max_entries: int = 4096) -> None:
        self._key = secrets.token_bytes(32)
        self._ttl, self._max = ttl_seconds, max_entries
        self._until: dict[bytes, float] = {}

    def verify(self, secret: str, stored: str) -> bool:
        """:func:`verify_password`, answered from memory for a recent success."""
        mark = hmac.new(self._key, stored.encode() + b"\0" + secret.encode(), "sha256").digest()
        now = time.monotonic()
        if self._until.get(mark, 0.0) > now:
            return True
        if not verify_password(secret, stored):
            return False
        if len(self._until) >= self._max:
            self._until.clear()
        self._until[mark] = now + self._ttl
        return True


#: The process's memory of recent successful verifications (see :class:`RecentVerifications`).
RECENT = RecentVerifications()
