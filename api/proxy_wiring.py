"""Wiring of registry endpoints and the proxy cache into one API process.

Builds the endpoint service (its secrets sealed under the master key), the upstream
clients on the outbound policy, and the :class:`~core.proxy.ProxyCache`, which joins the
``/v2`` pipeline as its content resolver and as a request-start hook (push refusal).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from functools import cache, partial

from adapters.master_key import secret_box
from adapters.spool import FileFetchLocks, FileFlightNotices, FileSpools
from adapters.upstream_registry import UpstreamClients
from api.context import Registry
from core.endpoints import EndpointService
from core.outbound import OutboundPolicy
from core.pipeline import Hooks
from core.proxy import ProxyBindings, ProxyCache, load_bindings
from core.sealing import SecretBox
from storage.db.endpoints import SqlEndpoints


def with_proxy(registry: Registry, hooks: Hooks) -> Hooks:
    """``hooks`` with the proxy cache added (unless a content resolver is already set)."""
    if hooks.content is not None:
        return hooks
    settings = registry.settings
    policy = OutboundPolicy.of(settings.outbound.allow, allow_http=settings.outbound.allow_http)

    @cache
    def box() -> SecretBox:
        return secret_box(settings)

    store = registry.extras["endpoint_store"]
    assert isinstance(store, SqlEndpoints)  # noqa: S101 - set by the composition root
    endpoints = EndpointService(store, box, policy)
    upstreams = UpstreamClients(
        policy,
        endpoints.credentials,
        timeout=settings.proxy.timeout_seconds,
        manifest_max_bytes=settings.limits.manifest_max_bytes,
    )
    proxy = ProxyCache(
        bindings=ProxyBindings(
            partial(load_bindings, registry.metadata), settings.proxy.refresh_seconds
        ),
        endpoints=endpoints,
        upstreams=upstreams,
        manifests=registry.manifests,
        repositories=registry.repositories,
        uploads=registry.uploads,
        spools=FileSpools(settings.data_dir.resolve() / "proxy-spool"),
        locks=FileFetchLocks(settings.data_dir.resolve() / "proxy-spool" / "locks"),
        notices=FileFlightNotices(settings.data_dir.resolve() / "proxy-spool" / "notices"),
        store=registry.store,
        settings=settings.proxy,
        manifest_max_bytes=settings.limits.manifest_max_bytes,
        blob_max_bytes=settings.limits.blob_max_bytes,
    )
    registry.extras.update(endpoints=endpoints, upstreams=upstreams, proxy=proxy)
    return replace(hooks, request_start=(proxy.refuse_pushes, *hooks.request_start), content=proxy)


async def start_proxy(registry: Registry) -> None:
    """Load the proxy bindings before the first request; keep reloading them."""
    proxy = registry.extras.get("proxy")
    if isinstance(proxy, ProxyCache):
        await proxy.bindings.reload()
        registry.extras["proxy_refresh"] = asyncio.get_running_loop().create_task(
            proxy.bindings.run()
        )


async def close_proxy(registry: Registry) -> None:
    """Stop downloads and fills, then close the upstream connections."""
    refresh = registry.extras.pop("proxy_refresh", None)
    if isinstance(refresh, asyncio.Task):
        refresh.cancel()
    proxy = registry.extras.get("proxy")
    if isinstance(proxy, ProxyCache):
        await proxy.stop()
    upstreams = registry.extras.get("upstreams")
    if isinstance(upstreams, UpstreamClients):
        await upstreams.aclose()
