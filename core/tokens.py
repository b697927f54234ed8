"""Registry bearer tokens (the distribution token spec): ES256 JWTs, short-lived.

The issuer signs with the installation's newest key; verification accepts any key it
holds (so a rotation never cuts off tokens already issued), pins the algorithm, and
checks ``iss``, ``aud``, ``exp``, ``nbf`` and the ``kid``.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from core.access import Scope

ALGORITHM = "ES256"


class InvalidTokenError(Exception):
    """The token is malformed, expired, not ours, or not for this service."""


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls) -> SigningKey:
        key = ec.generate_private_key(ec.SECP256R1())
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(hashlib.sha256(der).hexdigest()[:32], key)

    @classmethod
    def from_pem(cls, kid: str, pem: str) -> SigningKey:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TypeError("signing keys must be EC keys")
        return cls(kid, key)

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


class TokenService:
    """Issues and verifies registry tokens for one service (audience)."""

    def __init__(self, keys: list[SigningKey], issuer: str, audience: str, ttl: int) -> None:
        if not keys:
            raise ValueError("at least one signing key is required")
        self._keys = {key.kid: key for key in keys}
        self._current = keys[-1]
        self._issuer, self._audience, self._ttl = issuer, audience, ttl

    def issue(self, subject: str, access: list[Scope], admin: bool, now: datetime) -> IssuedToken:
        claims = {
            "iss": self._issuer,
            "sub": subject,
            "aud": self._audience,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()) - 5,
            "exp": int((now + timedelta(seconds=self._ttl)).timestamp()),
            "jti": secrets.token_hex(16),
            "access": [scope.as_claim() for scope in access],
            "adm": admin,
        }
        token = jwt.encode(
            claims,
            self._current.private_key,
            algorithm=ALGORITHM,
            headers={"kid": self._current.kid, "typ": "JWT"},
        )
        return IssuedToken(token, self._ttl, now)

    def verify(self, token: str) -> TokenClaims:
        try:
            header = jwt.get_unverified_header(token)
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
        return TokenClaims(
            subject=str(claims["sub"]),
            access=[_scope_from_claim(entry) for entry in claims.get("access", [])],
            admin=bool(claims.get("adm", False)),
        )

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.public_jwk() for key in self._keys.values()]}


def _scope_from_claim(entry: Any) -> Scope:
    if not isinstance(entry, dict):
        raise InvalidTokenError("malformed access claim")
    actions = entry.get("actions") or []
    return Scope(str(entry.get("type")), str(entry.get("name")), frozenset(map(str, actions)))
