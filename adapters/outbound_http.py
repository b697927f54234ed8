"""Outbound HTTP that only reaches what ``core.outbound`` allows (SSRF-safe egress).

Every call parses the URL against the policy, resolves the host once, refuses if any
address is not allowed, and connects to the checked address itself: the URL's host is
replaced by the address, ``Host`` carries the original name and TLS uses it for SNI and
certificate checks, so a second resolution (DNS rebinding) cannot redirect the call.
Redirects are never followed (a 3xx is returned to the caller, who must check its
``Location`` like any new destination and drop credentials), proxies from the environment
are ignored, and response bodies are read up to a limit.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import httpcore
import httpx

from adapters.http_sockets import polling_transport
from core.outbound import (
    OutboundPolicy,
    OutboundRefusedError,
    Resolver,
    checked_addresses,
    parse_destination,
)

_DEFAULT_PORTS = {"https": 443, "http": 80}
#: Idle connections a client keeps open for reuse (callers making many calls at once raise it).
KEEPALIVE = 20
#: The most an HTTP/1.1 connection takes from its socket per read (httpcore's default is
#: 64 KiB). The event loop's transport already reads up to 256 KiB at a time; asking for
#: less only cuts that into pieces that each pass the parser and the stream layers, which
#: limited a proxy download (an upstream blob) to about 250 MB/s of one process's loop.
#: A read never returns more than has arrived, so small responses are unaffected.
READ_BYTES = 1024 * 1024
httpcore.AsyncHTTP11Connection.READ_NUM_BYTES = READ_BYTES
#: The most of a response's unread rest read when a caller leaves it, so that its
#: connection goes back to the pool (a response closed before its end closes its
#: connection; a longer rest is cheaper to drop with the connection than to read).
DRAIN_BYTES = 64 * 1024
#: Longest wait for that rest (a server that stalls in it costs its connection, not more).
DRAIN_SECONDS = 1.0
#: Statuses whose answers never have a body.
_BODYLESS = frozenset({204, 304})


async def resolve_host(host: str, port: int) -> Sequence[str]:
    """Every address ``host`` resolves to (the resolver port of ``core.outbound``)."""
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True, slots=True)
class OutboundResponse:
    """A response read up to the client's body limit.

    Attributes:
        status: HTTP status code.
        headers: Response headers.
        body: At most ``max_body_bytes`` of the body.
        truncated: Whether the body was longer than that.
    """

    status: int
    headers: httpx.Headers
    body: bytes
    truncated: bool


def _short_rest(method: str, response: httpx.Response) -> bool:
    """Whether the unread rest of ``response`` is known to be at most :data:`DRAIN_BYTES`."""
    if method == "HEAD" or response.status_code in _BODYLESS:
        return True
    length = response.headers.get("content-length", "")
    return length.isdigit() and int(length) <= DRAIN_BYTES


async def _read_short_rest(method: str, response: httpx.Response) -> None:
    """Read what is left of ``response`` if nobody started reading it and it is short.

    A rest that has not arrived within :data:`DRAIN_SECONDS` is left; the connection is
    then closed with the response.
    """
    if not response.is_stream_consumed and _short_rest(method, response):
        with anyio.move_on_after(DRAIN_SECONDS), contextlib.suppress(httpx.HTTPError, OSError):
            await response.aread()


class OutboundClient:
    """An HTTP client for user-configured destinations; one per process is enough.

    Consistency: a refused destination raises :class:`OutboundRefusedError` before any
    byte is sent; nothing is ever sent to an address the policy does not allow.
    ``keepalive`` idle connections stay open for reuse (at most 100 open at once).
    """

    def __init__(
        self,
        policy: OutboundPolicy,
        *,
        connect_timeout: float = 5.0,
        total_timeout: float = 30.0,
        max_body_bytes: int = 64 * 1024,
        verify: ssl.SSLContext | bool = True,
        resolver: Resolver | None = None,
        keepalive: int = KEEPALIVE,
    ) -> None:
        self._policy = policy
        self._max_body = max_body_bytes
        self._resolve: Resolver = resolver if resolver is not None else resolve_host
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=keepalive)
        self._client = httpx.AsyncClient(
            trust_env=False,
            follow_redirects=False,
            timeout=httpx.Timeout(total_timeout, connect=connect_timeout),
            transport=polling_transport(verify=verify, limits=limits),
        )

    @property
    def policy(self) -> OutboundPolicy:
        return self._policy

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _pinned(
        self, method: str, url: str, headers: Mapping[str, str] | None, content: bytes | None
    ) -> httpx.Request:
        destination = parse_destination(url, self._policy)
        addresses = await checked_addresses(destination, self._policy, self._resolve)
        address = addresses[0]
        original = httpx.URL(url)
        pinned = original.copy_with(host=str(address))
        host_header = destination.host
        if destination.port != _DEFAULT_PORTS[destination.scheme]:
            host_header = f"{host_header}:{destination.port}"
        if ":" in destination.host and not host_header.startswith("["):
            host_header = f"[{destination.host}]" + host_header[len(destination.host) :]
        merged = dict(headers or {})
        merged["Host"] = host_header
        extensions = {"sni_hostname": destination.host} if destination.scheme == "https" else {}
        return self._client.build_request(
            method, pinned, headers=merged, content=content, extensions=extensions
        )

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """Send a request to a checked address and yield the unread response.

        When the caller leaves without reading the response's end (a ``HEAD``, an
        error's short body), a short rest is read here, so its connection is kept for the
        next request instead of being closed (a new connection for every ``HEAD``). That
        holds as well when the caller leaves by raising an exception (a ``404`` it turns
        into "not found"); a cancellation closes the connection.
        """
        request = await self._pinned(method, url, headers, content)
        response = await self._client.send(request, stream=True)
        try:
            try:
                yield response
            except Exception:
                await _read_short_rest(method, response)
                raise
            await _read_short_rest(method, response)
        finally:
            await response.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> OutboundResponse:
        """Send a request and read at most ``max_body_bytes`` of the response body."""
        async with self.stream(method, url, headers=headers, content=content) as response:
            body = bytearray()
            truncated = False
            async for chunk in response.aiter_bytes():
                room = self._max_body - len(body)
                if len(chunk) > room:
                    body.extend(chunk[:room])
                    truncated = True
                    break
                body.extend(chunk)
            return OutboundResponse(response.status_code, response.headers, bytes(body), truncated)


__all__ = [
    "KEEPALIVE",
    "OutboundClient",
    "OutboundRefusedError",
    "OutboundResponse",
    "resolve_host",
]
