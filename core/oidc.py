"""Validation of JWTs from external issuers (Keycloak, trusted workload issuers).

Only asymmetric algorithms are accepted; the key comes from the issuer's published keys
by ``kid`` (never from the token itself), through a :class:`core.identity_ports.SigningKeys`
adapter; ``iss``, ``aud``, ``exp`` and ``sub`` are required and checked, ``nbf``/``iat``
when present. Nothing here does I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jwt

if TYPE_CHECKING:
    from core.identity_ports import SigningKeys

ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
LEEWAY_SECONDS = 30
_JWT_PARTS = 3  # NOTE: header, payload, signature


class ExternalTokenError(Exception):
    """The JWT is not valid for the issuer and audience it was checked against."""


def looks_like_jwt(value: str) -> bool:
    parts = value.split(".")
    return len(parts) == _JWT_PARTS and all(parts)


def unverified_issuer(token: str) -> str | None:
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    issuer = claims.get("iss")
    return issuer if isinstance(issuer, str) else None


class JwtVerifier:
    """Verifies tokens of one issuer and audience against that issuer's signing keys."""

    def __init__(self, issuer: str, audience: str, keys: SigningKeys) -> None:
        self.issuer, self.audience = issuer, audience
        self._keys = keys

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims; raises :class:`ExternalTokenError` when anything is off."""
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") not in ALGORITHMS or header.get("crit"):
                raise ExternalTokenError("algorithm not accepted")
            claims: dict[str, Any] = jwt.decode(
                token,
                self._keys.key_for(token),
                algorithms=ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
                leeway=LEEWAY_SECONDS,
            )
        except (jwt.PyJWTError, ValueError) as exc:
            raise ExternalTokenError(str(exc)) from exc
        return claims
