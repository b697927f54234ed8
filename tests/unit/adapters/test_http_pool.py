"""The outbound pool reuses checked connections and keeps httpcore's limits (real sockets)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpcore
import httpx
import pytest

from adapters.http_pool import SWEEP_SECONDS, LazyPool
from adapters.http_sockets import polling_transport

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


@dataclass
class Server:
    """A keep-alive HTTP/1.1 server that counts its connections."""

    port: int = 0
    #: Close each connection right after its first answer (as a server ending keep-alive).
    close_after_answer: bool = False
    #: Seconds each answer waits (so concurrent requests overlap).
    delay: float = 0.0
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    answered: int = 0
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        self.writers.append(writer)
        try:
            while True:
                try:
                    await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                await asyncio.sleep(self.delay)
                writer.write(ANSWER)
                await writer.drain()
                self.answered += 1
                if self.close_after_answer:
                    return
        finally:
            self.open_now -= 1
            writer.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


@pytest.fixture
async def servers() -> AsyncIterator[list[Server]]:
    """Two servers: the first keeps connections, the second closes each after one answer."""
    made = [Server(), Server(close_after_answer=True)]
    started = []
    for server in made:
        listening = await asyncio.start_server(server.serve, "127.0.0.1", 0)
        server.port = listening.sockets[0].getsockname()[1]
        started.append(listening)
    try:
        yield made
    finally:
        for listening in started:
            listening.close()
        for server in made:
            for writer in server.writers:
                writer.close()


def _client(*, connections: int = 100, keepalive: int = 20) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=keepalive)
    return httpx.AsyncClient(transport=polling_transport(verify=False, limits=limits))


def _pool(client: httpx.AsyncClient) -> LazyPool:
    pool = client._transport._pool  # type: ignore[attr-defined]
    assert isinstance(pool, LazyPool)
    return pool


async def _get(client: httpx.AsyncClient, url: str) -> bytes:
    response = await client.get(url)
    assert response.status_code == 200
    return response.content


async def _burst(client: httpx.AsyncClient, url: str, count: int) -> None:
    """``count`` requests at once, each answered ``ok``."""
    bodies = await asyncio.gather(*(_get(client, url) for _ in range(count)))
    assert bodies == [b"ok"] * count


async def test_concurrent_requests_reuse_as_many_connections_as_run_at_once(
    servers: list[Server],
) -> None:
    keeping = servers[0]
    keeping.delay = 0.005
    async with _client() as client:
        for _ in range(5):
            await _burst(client, keeping.url, 4)
        assert len(_pool(client).connections) == 4
    assert keeping.answered == 20
    assert keeping.connections == 4


async def test_requests_wait_for_a_connection_when_the_pool_is_full(
    servers: list[Server],
) -> None:
    keeping = servers[0]
    keeping.delay = 0.02
    async with _client(connections=2) as client:
        await _burst(client, keeping.url, 7)
    assert keeping.most_open == 2
    assert keeping.connections == 2


async def test_idle_connections_beyond_the_keepalive_limit_are_closed(
    servers: list[Server],
) -> None:
    keeping = servers[0]
    keeping.delay = 0.02
    async with _client(keepalive=2) as client:
        await _burst(client, keeping.url, 5)
        await _get(client, keeping.url)  # a pass after the five answers ended
        assert len(_pool(client).connections) == 2
    assert keeping.connections == 5


async def test_a_connection_the_server_closed_is_never_handed_out(
    servers: list[Server],
) -> None:
    closing = servers[1]
    async with _client() as client:
        for _ in range(3):
            assert await _get(client, closing.url) == b"ok"
            await asyncio.sleep(0.05)  # the server's close has arrived
    assert closing.connections == 3
    assert closing.answered == 3


async def test_idle_connections_the_server_closed_are_swept_without_being_picked(
    servers: list[Server],
) -> None:
    """Connections to one server that closed them go, although only another is asked."""
    keeping, closing = servers
    async with _client() as client:
        await _burst(client, closing.url, 3)
        await asyncio.sleep(SWEEP_SECONDS + 0.1)
        await _get(client, keeping.url)
        pool = _pool(client)
        origin = httpcore.Origin(b"http", b"127.0.0.1", keeping.port)
        assert [c.can_handle_request(origin) for c in pool.connections] == [True]


async def test_a_full_pool_closes_an_idle_connection_for_another_origin(
    servers: list[Server],
) -> None:
    keeping, other = servers[0], Server()
    listening = await asyncio.start_server(other.serve, "127.0.0.1", 0)
    other.port = listening.sockets[0].getsockname()[1]
    try:
        async with _client(connections=2) as client:
            await _burst(client, keeping.url, 2)
            assert await _get(client, other.url) == b"ok"
            assert len(_pool(client).connections) == 2
    finally:
        listening.close()
        for writer in other.writers:
            writer.close()
    assert other.connections == 1
