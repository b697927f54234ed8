"""Wiring of registry endpoints into one API process.

Builds the endpoint service (its secrets sealed under the master key) and the upstream
clients on the outbound policy, kept in the registry's extras for the management API.
"""

from __future__ import annotations

from functools import cache

from adapters.master_key import secret_box
from adapters.upstream_registry import UpstreamClients
from api.context import Registry
from core.endpoints import EndpointService
from core.outbound import OutboundPolicy
from core.sealing import SecretBox
from storage.db.endpoints import SqlEndpoints
from storage.db.engine import create_engines


def wire_endpoints(registry: Registry) -> None:
    """Add the endpoint service and the upstream clients to ``registry.extras``."""
    settings = registry.settings
    policy = OutboundPolicy.of(settings.outbound.allow, allow_http=settings.outbound.allow_http)

    @cache
    def box() -> SecretBox:
        return secret_box(settings)

    endpoints = EndpointService(SqlEndpoints(create_engines(settings)), box, policy)
    upstreams = UpstreamClients(
        policy, endpoints.credentials, manifest_max_bytes=settings.limits.manifest_max_bytes
    )
    registry.extras.update(endpoints=endpoints, upstreams=upstreams)


async def close_endpoints(registry: Registry) -> None:
    """Close the upstream connections."""
    upstreams = registry.extras.get("upstreams")
    if isinstance(upstreams, UpstreamClients):
        await upstreams.aclose()
