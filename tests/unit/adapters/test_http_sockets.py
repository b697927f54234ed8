"""The outbound client's pool notices a connection the server closed, with one ``poll``."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from adapters.http_sockets import PollingBackend, PollingStream, socket_readable
from adapters.outbound_http import OutboundClient
from core.outbound import OutboundPolicy

LOOPBACK = OutboundPolicy.of(["127.0.0.0/8"], allow_http=True)
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"


def test_a_socket_is_readable_when_bytes_or_its_end_wait() -> None:
    ours, theirs = socket.socketpair()
    try:
        assert not socket_readable(ours)
        theirs.sendall(b"x")
        assert socket_readable(ours)
        ours.recv(1)
        assert not socket_readable(ours)
        theirs.close()
        assert socket_readable(ours)  # the peer's end is waiting to be read
    finally:
        ours.close()
    assert not socket_readable(ours)  # closed: no descriptor to poll
    assert not socket_readable(None)


@pytest.fixture
async def closing_server() -> AsyncIterator[tuple[int, list[int]]]:
    """A server answering one request per connection as if kept alive, then closing it."""
    connections: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer.get_extra_info("peername")[1])
        await reader.readuntil(b"\r\n\r\n")
        writer.write(ANSWER)
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, connections
    finally:
        server.close()
        await server.wait_closed()


async def test_a_connection_the_server_closed_is_not_reused(
    closing_server: tuple[int, list[int]],
) -> None:
    """The second request goes out on a new connection and succeeds."""
    port, connections = closing_server
    client = OutboundClient(LOOPBACK)
    try:
        first = await client.request("GET", f"http://127.0.0.1:{port}/a")
        await asyncio.sleep(0.3)  # the server has closed the idle connection by now
        second = await client.request("GET", f"http://127.0.0.1:{port}/b")
    finally:
        await client.aclose()
    assert (first.status, first.body, second.status, second.body) == (200, b"ok", 200, b"ok")
    assert len(connections) == 2


async def test_the_backend_makes_polling_streams_that_keep_their_socket() -> None:
    connected = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        del reader
        connected.set()
        await asyncio.sleep(0.05)
        writer.write(b"hello")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        stream = await PollingBackend().connect_tcp("127.0.0.1", port, timeout=5)
        assert isinstance(stream, PollingStream)
        await connected.wait()
        assert stream.get_extra_info("is_readable") is False
        assert stream.get_extra_info("server_addr") == ("127.0.0.1", port)
        assert await stream.read(5, timeout=5) == b"hello"
        await asyncio.sleep(0.05)
        assert stream.get_extra_info("is_readable") is True  # the server's close waits
        await stream.aclose()
        assert stream.get_extra_info("is_readable") is False
    finally:
        server.close()
        await server.wait_closed()
