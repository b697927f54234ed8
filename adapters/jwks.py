"""Issuers' signing keys over HTTP: OIDC discovery and JWKS fetching (``SigningKeys``).

The JWKS is fetched with PyJWT's client (keys cached for five minutes, refetched when an
unknown ``kid`` shows up); a discovery document is read with ``httpx`` and re-read every
five minutes, so an issuer that moves its JWKS is followed. Every failure to fetch or find
a key is an :class:`core.oidc.ExternalTokenError`.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import jwt

from core.oidc import ExternalTokenError

_DISCOVERY_TTL = 300.0
_KEYS_TTL = 300
_TIMEOUT = 10.0


class JwksKeys:
    """The signing keys of one issuer, from its JWKS URL or its discovery document.

    The class itself is a :class:`core.identity_ports.SigningKeysSource`.
    """

    def __init__(self, issuer: str, *, jwks_url: str | None, discovery_url: str | None) -> None:
        if jwks_url is None and discovery_url is None:
            raise ValueError("a JWKS URL or a discovery URL is required")
        self.issuer = issuer
        self._jwks_url, self._discovery_url = jwks_url, discovery_url
        self._client: jwt.PyJWKClient | None = None
        self._resolved_at = 0.0
        self._lock = threading.Lock()

    def _jwk_client(self) -> jwt.PyJWKClient:
        with self._lock:
            stale = time.monotonic() - self._resolved_at > _DISCOVERY_TTL
            if self._client is None or (self._discovery_url and stale):
                url = self._jwks_url or self._discover()
                self._client = jwt.PyJWKClient(
                    url, cache_keys=True, lifespan=_KEYS_TTL, timeout=int(_TIMEOUT)
                )
                self._resolved_at = time.monotonic()
            return self._client

    def _discover(self) -> str:
        if self._discovery_url is None:
            raise ExternalTokenError("no discovery URL")
        response = httpx.get(self._discovery_url, timeout=_TIMEOUT)
        response.raise_for_status()
        document = response.json()
        if document.get("issuer") != self.issuer or not isinstance(document.get("jwks_uri"), str):
            raise ExternalTokenError("discovery document does not match the issuer")
        return str(document["jwks_uri"])

    def key_for(self, token: str) -> Any:
        """The key named by the token's ``kid``; raises :class:`ExternalTokenError`."""
        try:
            return self._jwk_client().get_signing_key_from_jwt(token).key
        except (jwt.PyJWTError, httpx.HTTPError, ValueError) as exc:
            raise ExternalTokenError(str(exc)) from exc
