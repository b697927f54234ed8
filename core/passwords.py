"""Password and secret hashing: argon2id, with the older scrypt hashes still accepted.

New hashes are argon2id in the PHC string format (``$argon2id$v=19$m=...,t=...,p=...$``)
with this module's parameters. Hashes written before argon2id
(``scrypt$N$r$p$salt$key``, base64 fields) still verify; :func:`needs_rehash` is true
for them and for argon2 hashes made with other parameters, so a caller that has just
verified the secret can store :func:`hash_password` of it instead (see
``core.services.auth.AuthService.authenticate``). Every comparison is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Final

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

#: argon2id with 19 MiB, 2 passes, 1 lane: the OWASP minimum for argon2id. Memory per
#: hash stays small enough for 16 concurrent logins per process, at about the CPU cost
#: of the scrypt parameters used before (N=2**14, r=8, p=1).
_ARGON2: Final = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, type=Type.ID)
_ARGON2_PREFIX: Final = "$argon2"
_SCRYPT_SCHEME: Final = "scrypt"


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (random salt) in the PHC string format."""
    return _ARGON2.hash(password)


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (argon2 or the older scrypt format).

    A malformed or unknown ``stored`` value matches nothing.
    """
    if stored.startswith(_ARGON2_PREFIX):
        try:
            return _ARGON2.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False
    return _verify_scrypt(password, stored)


def needs_rehash(stored: str) -> bool:
    """Whether ``stored`` should be replaced by :func:`hash_password` of its secret.

    True for scrypt hashes and for argon2 hashes of another variant or other parameters.
    """
    if not stored.startswith(_ARGON2_PREFIX):
        return True
    try:
        return _ARGON2.check_needs_rehash(stored)
    except InvalidHashError:
        return True


def _verify_scrypt(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != _SCRYPT_SCHEME:
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
    password (or a rehash of the same one) has a new stored hash and never matches an
    old entry. Callers still check everything else (disabled, expired, revoked) on
    every use.
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
