"""Registry bearer tokens (the distribution token spec): ES256 JWTs, short-lived.

The issuer signs with the installation's newest key that every process has had time to
load (publish before use); verification accepts any key it holds (so a rotation never
cuts off tokens already issued), pins the algorithm, and checks ``iss``, ``aud``,
``exp``, ``nbf`` and the ``kid``.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from core.access import Scope

ALGORITHM = "ES256"
#: API processes re-read the signing keys at most this long after a change.
KEY_RELOAD_SECONDS = 30
#: Clock difference between processes that key retirement allows for.
CLOCK_SKEW_SECONDS = 60
#: A new key signs only this long after it was added: by then every process has read it
#: (publish before use), so no process meets a token whose key it has not loaded yet.
KEY_ACTIVATION_SECONDS = KEY_RELOAD_SECONDS + CLOCK_SKEW_SECONDS
_RELOAD_SECONDS = float(KEY_RELOAD_SECONDS)
_ACTIVATION = timedelta(seconds=KEY_ACTIVATION_SECONDS)
_VERIFIED_MAX = 4096


class InvalidTokenError(Exception):
    """The token is malformed, expired, not ours, or not for this service."""


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: ec.EllipticCurvePrivateKey
    #: When the key was added to the installation; ``None`` means signing from the start.
    created_at: datetime | None = None

    @classmethod
    def generate(cls) -> SigningKey:
        key = ec.generate_private_key(ec.SECP256R1())
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(hashlib.sha256(der).hexdigest()[:32], key)

    @classmethod
    def from_pem(cls, kid: str, pem: str, created_at: datetime | None = None) -> SigningKey:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TypeError("signing keys must be EC keys")
        return cls(kid, key, created_at)

    def signs_at(self, now: datetime) -> bool:
        """Whether the key is old enough for every process to know it at ``now``."""
        return self.created_at is None or self.created_at + _ACTIVATION <= now

    def to_pem(self) -> str:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = jwt.algorithms.ECAlgorithm.to_jwk(
            self.private_key.public_key(), as_dict=True
        )
        return {**jwk, "kid": self.kid, "alg": ALGORITHM, "use": "sig"}


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_in: int
    issued_at: datetime


@dataclass(frozen=True)
class TokenClaims:
    subject: str
    access: list[Scope]
    admin: bool
    #: Who the subject is (kind, groups, explicit permissions), for the catalog.
    principal: dict[str, Any] = field(default_factory=dict)


class TokenService:
    """Issues and verifies registry tokens for one service (audience)."""

    def __init__(
        self,
        keys: list[SigningKey],
        issuer: str,
        audience: str,
        ttl: int,
        loader: Callable[[], list[SigningKey]] | None = None,
    ) -> None:
        if not keys:
            raise ValueError("at least one signing key is required")
        self._keys = {key.kid: key for key in keys}
        self._ordered = list(keys)
        self._issuer, self._audience, self._ttl = issuer, audience, ttl
        #: Re-reads the installation's keys (after a rotation).
        self._loader = loader
        self._loaded_at = time.monotonic()
        #: Tokens already verified, with their expiry: a token is checked once per process.
        self._verified: dict[str, tuple[float, TokenClaims]] = {}

    def refresh(self, min_age: float = _RELOAD_SECONDS) -> None:
        """Reload the keys if a loader is set and the last load is ``min_age`` seconds old."""
        if self._loader is None or time.monotonic() - self._loaded_at < min_age:
            return
        self._loaded_at = time.monotonic()
        keys = self._loader()
        if keys:
            self._keys = {key.kid: key for key in keys}
            self._ordered = list(keys)
            self._verified.clear()

    def signing_key(self, now: datetime) -> SigningKey:
        """The newest key that signs at ``now``; the oldest if none is old enough yet.

        Every process picks the same key from the same key list, and a key signs only
        after :data:`KEY_ACTIVATION_SECONDS`, so a token always carries a key that every
        process holds (the reload is at most :data:`KEY_RELOAD_SECONDS` behind).
        """
        active = [key for key in self._ordered if key.signs_at(now)]
        return active[-1] if active else self._ordered[0]

    def issue(
        self,
        subject: str,
        access: list[Scope],
        admin: bool,
        now: datetime,
        principal: dict[str, Any] | None = None,
        ttl: int | None = None,
    ) -> IssuedToken:
        """A signed token for ``subject`` granting ``access``.

        ``ttl`` (seconds) overrides the service's lifetime for this token (a token handed
        to a job that runs longer than a client's pull, ``core.preheat.token_lifetime``).
        """
        lifetime = self._ttl if ttl is None else ttl
        if lifetime < 1:
            raise ValueError("a token lives at least one second")
        self.refresh()
        claims = {
            "iss": self._issuer,
            "sub": subject,
            "aud": self._audience,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()) - 5,
            "exp": int((now + timedelta(seconds=lifetime)).timestamp()),
            "jti": secrets.token_hex(16),
            "access": [scope.as_claim() for scope in access],
            "adm": admin,
        }
        if principal:
            claims["mrg"] = principal
        key = self.signing_key(now)
        token = jwt.encode(
            claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid, "typ": "JWT"}
        )
        return IssuedToken(token, lifetime, now)

    def verify(self, token: str) -> TokenClaims:
        """The claims of a valid token; raise :class:`InvalidTokenError` otherwise.

        A verified token is remembered until its expiry (bounded), so repeated requests
        with the same token cost one dictionary lookup.
        """
        cached = self._verified.get(token)
        if cached is not None:
            if cached[0] > time.time():
                return cached[1]
            self._verified.pop(token, None)
        expires, claims = self._verify(token)
        if len(self._verified) >= _VERIFIED_MAX:
            self._verified.clear()
        self._verified[token] = (expires, claims)
        return claims

    def _verify(self, token: str) -> tuple[float, TokenClaims]:
        try:
            header = jwt.get_unverified_header(token)
            if str(header.get("kid", "")) not in self._keys:
                self.refresh(min_age=1.0)
            key = self._keys.get(str(header.get("kid", "")))
            if key is None or header.get("alg") != ALGORITHM or header.get("crit"):
                raise InvalidTokenError("unknown signing key or algorithm")
            claims = jwt.decode(
                token,
                key.private_key.public_key(),
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "nbf", "iat", "iss", "aud", "sub"]},
                leeway=5,
            )
        except jwt.PyJWTError as exc:
            raise InvalidTokenError(str(exc)) from exc
        return float(claims["exp"]), TokenClaims(
            subject=str(claims["sub"]),
            access=[_scope_from_claim(entry) for entry in claims.get("access", [])],
            admin=bool(claims.get("adm", False)),
            principal=dict(claims.get("mrg") or {}),
        )

    def jwks(self) -> dict[str, Any]:
        """The public keys; re-read at most once a second, so new keys appear at once."""
        self.refresh(min_age=1.0)
        return {"keys": [key.public_jwk() for key in self._keys.values()]}


def _scope_from_claim(entry: Any) -> Scope:
    if not isinstance(entry, dict):
        raise InvalidTokenError("malformed access claim")
    actions = entry.get("actions") or []
    return Scope(str(entry.get("type")), str(entry.get("name")), frozenset(map(str, actions)))
