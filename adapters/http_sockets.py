"""httpcore's network backend with a readability check that costs one ``poll``.

Before it hands out a pooled connection, and again whenever a response is closed,
httpcore's connection pool asks every idle connection whether its socket is readable (an
idle HTTP/1.1 socket with bytes waiting means the server closed it). Its AnyIO stream
answers through AnyIO's typed attributes, which build a dictionary of every attribute and
ask the socket for its peer address each time: with 16 to 64 kept connections that scan was
the largest single cost of the worker's event loop while replication planned a run (many
small requests to one registry). :class:`PollingBackend` is httpcore's AnyIO backend whose
streams keep their socket and answer the check with one ``poll`` of it; everything else
(reads, writes, TLS, timeouts, error mapping) is AnyIO's stream unchanged. The ``timeout``
parameters are httpcore's interface.
"""

from __future__ import annotations

import select
import ssl
from collections.abc import Iterable
from typing import Any, Protocol

import httpcore
import httpx

from adapters.http_pool import LazyPool

#: httpcore's socket option type (level, option, value).
SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


class Descriptor(Protocol):
    """What the check needs of a socket: its descriptor (``-1`` once it is closed)."""

    def fileno(self) -> int: ...


def socket_readable(sock: Descriptor | None) -> bool:
    """Whether ``sock`` has bytes (or its end) waiting; ``False`` once it is closed."""
    if sock is None:
        return False
    fd = sock.fileno()
    if fd < 0:
        return False
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class PollingStream(httpcore.AsyncNetworkStream):
    """An httpcore network stream whose ``is_readable`` polls the socket it was made on."""

    __slots__ = ("_inner", "_socket")

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        # NOTE: asyncio hands out a TransportSocket, a wrapper that has fileno() too
        found = inner.get_extra_info("socket")
        self._socket: Descriptor | None = found if hasattr(found, "fileno") else None

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> httpcore.AsyncNetworkStream:
        wrapped = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        return PollingStream(wrapped)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return socket_readable(self._socket)
        return self._inner.get_extra_info(info)


class PollingBackend(httpcore.AnyIOBackend):
    """httpcore's AnyIO backend making :class:`PollingStream` connections."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await super().connect_tcp(host, port, timeout, local_address, socket_options)
        return PollingStream(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await super().connect_unix_socket(path, timeout, socket_options)
        return PollingStream(stream)


def polling_transport(
    *, verify: ssl.SSLContext | bool, limits: httpx.Limits
) -> httpx.AsyncHTTPTransport:
    """The httpx transport (no proxies from the environment) on a :class:`PollingBackend` pool.

    httpx does not take a network backend, so the pool it made is replaced by one made the
    same way (its own TLS context, HTTP/1.1 only) with the backend: the transport's only
    state is that pool. The pool is ``adapters.http_pool.LazyPool``, which checks only the
    connections it hands out.
    """
    # NOTE: one TLS context (loading the CA bundle is the costly part), given to both
    context = httpx.create_ssl_context(verify=verify, trust_env=False)
    transport = httpx.AsyncHTTPTransport(verify=context, trust_env=False, limits=limits)
    transport._pool = LazyPool(  # noqa: SLF001
        ssl_context=context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=PollingBackend(),
    )
    return transport


__all__ = [
    "Descriptor",
    "PollingBackend",
    "PollingStream",
    "polling_transport",
    "socket_readable",
]
