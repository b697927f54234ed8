"""The registry clients of replication's two sides, on the one upstream client.

The remote side of a policy is its endpoint (``adapters.upstream_registry.UpstreamClients``,
the endpoint's sealed credentials opened per client). The local side here is this
installation's own ``/v2`` at ``replication.local_url`` (or ``public_url``), reached as an
administrator with tokens signed here for exactly the scope of each request: what a push
policy reads from this installation passes the same pipeline (and pull gates) as any pull.
A pull policy's writes into this installation do not come this way: the worker makes
them through the services (``core.services.replication_local``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import time
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit

from adapters.upstream_registry import UpstreamClient, UpstreamClients
from core.access import Scope, parse_scope
from core.endpoints import ANONYMOUS, EndpointRecord, EndpointService, EndpointType
from core.outbound import OutboundPolicy
from core.replication_copy import ReplicaRegistry
from core.services.replication_local import REPLICATION_SUBJECT
from core.settings import Settings
from core.tokens import TokenService

#: Subject of the tokens the local side uses (audit shows its requests as replication's).
SUBJECT = REPLICATION_SUBJECT
#: A token is reused until this many seconds before it expires.
_MARGIN = 60.0


class LocalTokens:
    """Bearer tokens for this installation's ``/v2``, one per scope, reused while fresh."""

    def __init__(self, tokens: Callable[[], TokenService], ttl: int) -> None:
        self._tokens = tokens
        self._ttl = ttl
        self._cache: dict[str, tuple[float, str]] = {}

    def __call__(self, scope: str) -> str:
        cached = self._cache.get(scope)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        scopes: list[Scope] = [s for s in map(parse_scope, scope.split()) if s is not None]
        issued = self._tokens().issue(SUBJECT, scopes, True, datetime.now(UTC))
        self._cache[scope] = (time.monotonic() + max(self._ttl - _MARGIN, 1.0), issued.token)
        return issued.token


def local_policy(settings: Settings, url: str) -> OutboundPolicy:
    """The outbound policy plus the local URL's own address (it is ours to call)."""
    allow = list(settings.outbound.allow)
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        allow += ["127.0.0.0/8", "::1/128"]
    else:
        with contextlib.suppress(ValueError):
            allow.append(str(ipaddress.ip_address(host)))
    return OutboundPolicy.of(allow, allow_http=urlsplit(url).scheme == "http")


class ReplicationClients:
    """``core.replication_run.ReplicaClients`` over the endpoint service and local tokens."""

    def __init__(
        self,
        settings: Settings,
        endpoints: EndpointService,
        tokens: Callable[[], TokenService],
    ) -> None:
        self._settings = settings
        self._endpoints = endpoints
        self._remotes = UpstreamClients(
            endpoints.policy,
            endpoints.credentials,
            timeout=settings.proxy.timeout_seconds,
            manifest_max_bytes=settings.limits.manifest_max_bytes,
        )
        self._tokens = LocalTokens(tokens, settings.auth.token_ttl_seconds)
        self._local: UpstreamClient | None = None

    def local(self) -> ReplicaRegistry:
        if self._local is None:
            url = self._settings.replication.local_url or self._settings.public_url
            if not url:
                raise LookupError("set replication.local_url (or public_url) to replicate")
            record = EndpointRecord.unsaved("local", url.rstrip("/"), EndpointType.MOORAGE)
            self._local = UpstreamClient(
                record,
                ANONYMOUS,
                local_policy(self._settings, url),
                timeout=self._settings.proxy.timeout_seconds,
                manifest_max_bytes=self._settings.limits.manifest_max_bytes,
                token_source=self._tokens,
            )
        return self._local

    def remote(self, endpoint: str) -> ReplicaRegistry:
        return self._remotes.client(self._endpoints.get(endpoint))

    async def aclose(self) -> None:
        if self._local is not None:
            await self._local.aclose()
        await self._remotes.aclose()
