"""Validation of JWTs from external issuers (Keycloak, trusted workload issuers).

Only asymmetric algorithms are accepted; the key comes from the issuer's JWKS by
``kid`` (never from the token itself); ``iss``, ``aud``, ``exp`` are required and
checked, ``nbf``/``iat`` when present.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import jwt

ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
LEEWAY_SECONDS = 30
_DISCOVERY_TTL = 300.0


class ExternalTokenError(Exception):
    """The JWT is not valid for the issuer and audience it was checked against."""


def looks_like_jwt(value: str) -> bool:
    parts = value.split(".")
    return len(parts) == 3 and all(parts)  # noqa: PLR2004 - header, payload, signature and value.startswith("eyJ")


def unverified_issuer(token: str) -> str | None:
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    issuer = claims.get("iss")
    return issuer if isinstance(issuer, str) else None


class JwtVerifier:
    """Verifies tokens of one issuer and audience against the issuer's JWKS (cached)."""

    def __init__(
        self,
        issuer: str,
        audience: str,
        *,
        jwks_url: str | None = None,
        discovery_url: str | None = None,
    ) -> None:
        if jwks_url is None and discovery_url is None:
            raise ValueError("a JWKS URL or a discovery URL is required")
        self.issuer, self.audience = issuer, audience
        self._jwks_url, self._discovery_url = jwks_url, discovery_url
        self._client: jwt.PyJWKClient | None = None
        self._resolved_at = 0.0
        self._lock = threading.Lock()

    def _jwk_client(self) -> jwt.PyJWKClient:
        with self._lock:
            stale = time.monotonic() - self._resolved_at > _DISCOVERY_TTL
            if self._client is None or (self._discovery_url and stale):
                url = self._jwks_url or self._discover()
                self._client = jwt.PyJWKClient(url, cache_keys=True, lifespan=300, timeout=10)
                self._resolved_at = time.monotonic()
            return self._client

    def _discover(self) -> str:
        if self._discovery_url is None:
            raise ExternalTokenError("no discovery URL")
        response = httpx.get(self._discovery_url, timeout=10.0)
        response.raise_for_status()
        document = response.json()
        if document.get("issuer") != self.issuer or not isinstance(document.get("jwks_uri"), str):
            raise ExternalTokenError("discovery document does not match the issuer")
        return str(document["jwks_uri"])

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims; raises :class:`ExternalTokenError` when anything is off."""
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") not in ALGORITHMS or header.get("crit"):
                raise ExternalTokenError("algorithm not accepted")
            key = self._jwk_client().get_signing_key_from_jwt(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=ALGORITHMS,
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
                leeway=LEEWAY_SECONDS,
            )
        except (jwt.PyJWTError, httpx.HTTPError, ValueError) as exc:
            raise ExternalTokenError(str(exc)) from exc
        return claims
