"""Outbound HTTP reaches only allowed addresses, pins the checked one, follows no redirect."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence

import pytest
from aiohttp import web

from adapters.outbound_http import DRAIN_SECONDS, OutboundClient
from core.outbound import OutboundPolicy, OutboundRefusedError

LOOPBACK = OutboundPolicy.of(["127.0.0.0/8"], allow_http=True)
#: The client's address and port a request came from (its connection).
PEER = web.RequestKey("peer", tuple)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[web.Request]]]:
    seen: list[web.Request] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append(request)
        if request.transport is not None:
            request[PEER] = request.transport.get_extra_info("peername")
        if request.path == "/redirect":
            raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")
        if request.path == "/big":
            return web.Response(body=b"x" * 10_000)
        if request.path == "/huge":
            return web.Response(body=b"x" * 1_000_000)
        if request.path == "/missing":
            return web.Response(status=404, text='{"errors": [{"code": "NAME_UNKNOWN"}]}')
        return web.Response(text=request.headers.get("Host", ""))

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


async def _to_loopback(host: str, port: int) -> Sequence[str]:
    del host, port
    return ["127.0.0.1"]


async def test_a_name_is_connected_to_at_its_checked_address(
    receiver: tuple[str, list[web.Request]],
) -> None:
    address, seen = receiver
    port = address.rsplit(":", 1)[1]
    client = OutboundClient(LOOPBACK, resolver=_to_loopback)
    try:
        response = await client.request("POST", f"http://hooks.test:{port}/x", content=b"{}")
    finally:
        await client.aclose()
    assert response.status == 200
    assert response.body == f"hooks.test:{port}".encode()
    assert len(seen) == 1


async def test_refused_destinations_are_never_contacted(
    receiver: tuple[str, list[web.Request]],
) -> None:
    address, seen = receiver
    port = address.rsplit(":", 1)[1]
    client = OutboundClient(OutboundPolicy.of(allow_http=True), resolver=_to_loopback)
    try:
        for url in (
            f"http://{address}/",
            f"http://2130706433:{port}/",
            f"http://0x7f.1:{port}/",
            f"http://rebinding.test:{port}/",
        ):
            with pytest.raises(OutboundRefusedError):
                await client.request("GET", url)
    finally:
        await client.aclose()
    assert seen == []


async def test_redirects_are_returned_not_followed_and_bodies_are_capped(
    receiver: tuple[str, list[web.Request]],
) -> None:
    address, seen = receiver
    client = OutboundClient(LOOPBACK, max_body_bytes=100)
    try:
        redirect = await client.request("GET", f"http://{address}/redirect")
        big = await client.request("GET", f"http://{address}/big")
    finally:
        await client.aclose()
    assert redirect.status == 302
    assert redirect.headers["location"].startswith("http://169.254.169.254")
    assert (len(big.body), big.truncated) == (100, True)
    assert [r.path for r in seen] == ["/redirect", "/big"]


async def test_responses_left_unread_keep_their_connection_when_short(
    receiver: tuple[str, list[web.Request]],
) -> None:
    """A ``HEAD`` or a short error left unread does not cost a new connection each time."""
    address, seen = receiver
    client = OutboundClient(LOOPBACK)
    try:
        for method, path in [("HEAD", "/a"), ("GET", "/missing"), ("HEAD", "/b"), ("GET", "/c")]:
            async with client.stream(method, f"http://{address}{path}") as response:
                assert response.status_code in (200, 404)
        async with client.stream("GET", f"http://{address}/huge") as response:
            first = await anext(response.aiter_raw())  # a long rest is not read to keep it
        after = await client.request("GET", f"http://{address}/d")
    finally:
        await client.aclose()
    assert first
    assert after.status == 200
    peers = [r.get(PEER) for r in seen]
    assert len(peers) == 6
    assert len(set(peers[:5])) == 1  # one connection for the short ones and the start of /huge
    assert peers[5] != peers[0]  # /huge's connection was closed with its unread rest


class _NotThereError(Exception):
    """What a caller makes of a ``404`` (an upstream client's "not found")."""


async def test_a_caller_raising_on_a_short_answer_keeps_the_connection(
    receiver: tuple[str, list[web.Request]],
) -> None:
    """A ``HEAD`` answered ``404`` and turned into an exception is not a new connection each."""
    address, seen = receiver
    client = OutboundClient(LOOPBACK)
    try:
        for path in ["/missing", "/missing-too", "/a"]:
            with pytest.raises(_NotThereError):
                async with client.stream("HEAD", f"http://{address}{path}") as response:
                    raise _NotThereError(response.status_code)
        after = await client.request("GET", f"http://{address}/d")
    finally:
        await client.aclose()
    assert after.status == 200
    peers = [r.get(PEER) for r in seen]
    assert len(peers) == 4
    assert len(set(peers)) == 1


async def test_a_short_rest_that_stalls_costs_its_connection_not_the_callers_time() -> None:
    """A ``404`` whose declared body never comes: the caller's error is not held up."""
    connections = 0
    release = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            if head.startswith(b"GET /stall "):
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\n\r\nab")
                await writer.drain()
                await release.wait()
                break
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = OutboundClient(LOOPBACK)
    try:
        started = time.monotonic()
        with pytest.raises(_NotThereError):
            async with client.stream("GET", f"http://127.0.0.1:{port}/stall") as response:
                raise _NotThereError(response.status_code)
        waited = time.monotonic() - started
        after = await client.request("GET", f"http://127.0.0.1:{port}/ok")
    finally:
        release.set()
        await client.aclose()
        server.close()
    assert DRAIN_SECONDS <= waited < DRAIN_SECONDS + 5
    assert (after.status, after.body) == (200, b"ok")
    assert connections == 2  # the stalled connection was not handed out again
