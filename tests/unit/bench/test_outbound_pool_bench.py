"""The outbound pool benchmark measures the pool it names."""

from __future__ import annotations

import httpcore
import httpx

from adapters.http_pool import LazyPool
from adapters.http_sockets import polling_transport
from bench.outbound_pool import POOLS, pool_class

LIMITS = httpx.Limits(max_connections=4, max_keepalive_connections=2)


def _pool_of(transport: httpx.AsyncHTTPTransport) -> object:
    return transport._pool


def test_each_named_pool_is_the_one_transports_get_while_it_is_measured() -> None:
    assert {"moorage": LazyPool, "httpcore": httpcore.AsyncConnectionPool} == POOLS
    for kind in POOLS.values():
        with pool_class(kind):
            assert type(_pool_of(polling_transport(verify=False, limits=LIMITS))) is kind
    assert type(_pool_of(polling_transport(verify=False, limits=LIMITS))) is LazyPool
