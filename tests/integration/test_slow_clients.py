"""Many idle and slow clients neither stop pulls nor grow the API's memory (issue 17, item 5).

``moorage api`` (granian, 2 workers) runs with short limits. 1,000 connections go to the
API's port and 1,000 to the workers' download listener: half of each idle (connected,
nothing sent), half trickling a request head a byte a second. While they are open, normal
pulls (manifest, config and layer on ``/v2``, and a large blob through the download
listener) all succeed; then every slow connection is closed by the server once the head
timeout has passed, and the API processes' resident memory grew less than the bound
below. A request whose body stalls is answered ``408`` after the body timeout and closed.
The same limits hold under ``--server uvicorn``, checked with fewer connections.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from bench.client import Credentials, RegistryClient, Target
from bench.procmem import ProcFs
from bench.slowclients import SlowFlood, body_head, push_image, raise_open_files
from tests.services.moorage import MoorageServer, start_moorage
from tests.services.process import LOOPBACK

if TYPE_CHECKING:
    from pathlib import Path

_log = logging.getLogger(__name__)

#: The benchmark client logs in with aiohttp's ``auth``, deprecated in aiohttp 3.13.
pytestmark = [
    pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The 'auth' parameter is deprecated:DeprecationWarning"),
]

SLOW = 1000
HEADER_TIMEOUT_S = 3.0
BODY_TIMEOUT_S = 2.0
MIB = 1024 * 1024
THRESHOLD = MIB
#: Bound on the growth of the API processes' summed RSS while 2,000 slow connections are
#: open: 64 KiB a connection. What one costs is far less: granian keeps an 8 KiB read
#: buffer and a task per connection until a head is complete, the download listener an
#: asyncio task and a buffer of the bytes received; 64 KiB leaves room for the allocator
#: keeping freed pages and for the pulls themselves, yet a server that buffered, spawned a
#: thread or built a request per slow connection would exceed it. Measured: 19 MiB in all
#: (about 10 KiB a connection) on 2 workers.
RSS_GROWTH_BOUND = 2 * SLOW * 64 * 1024
REPO = "slow/app"
#: Slow connections of the uvicorn check (the 1,000 run above is granian's).
UVICORN_SLOW = 200
#: Longest wait for the server to close every slow connection.
CLOSE_BOUND_S = HEADER_TIMEOUT_S + 60.0


def _start(tmp_path: Path, *args: str) -> MoorageServer:
    env = {
        "MOORAGE_DATA_DIR": str(tmp_path / "data"),
        "MOORAGE_AUTH__ADMIN_PASSWORD": secrets.token_urlsafe(18),
        "MOORAGE_AUTH__CREATE_PROJECT_ON_PUSH": "true",
        "MOORAGE_SERVER__HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT_S),
        "MOORAGE_SERVER__BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT_S),
        "MOORAGE_DOWNLOADS__THRESHOLD_BYTES": str(THRESHOLD),
    }
    return start_moorage(tmp_path / "api", env, args)


async def _download_port(client: RegistryClient, digest: str) -> int:
    async with client.session.get(
        f"{client.base}/v2/{REPO}/blobs/{digest}", headers=client.headers(), allow_redirects=False
    ) as answer:
        assert answer.status == 307
        port = urlsplit(answer.headers["Location"]).port
    assert port is not None
    return port


async def _pull(client: RegistryClient, digests: dict[str, int]) -> None:
    """One pull: the manifest by tag, then every blob, each read fully."""
    assert await client.manifest("GET", REPO, "latest") > 0
    for digest, size in digests.items():
        assert await client.pull_blob(REPO, digest) == size


async def _stalled_body(port: int, token: str) -> bytes:
    """A manifest ``PUT`` whose body stops after 10 bytes: everything the server sends."""
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    try:
        writer.write(body_head(REPO, token) + b'{"schemaVe')
        await writer.drain()
        async with asyncio.timeout(BODY_TIMEOUT_S + 30):
            return await reader.read()
    finally:
        writer.close()


async def _scenario(server: MoorageServer) -> None:
    target = Target(
        "moorage", server.url, Credentials(server.admin_username, server.admin_password)
    )
    procs = ProcFs()
    async with RegistryClient(target, 8) as client:
        await client.refresh_token([REPO])
        digests = await push_image(client, REPO)
        big = os.urandom(2 * THRESHOLD)
        big_digest = "sha256:" + hashlib.sha256(big).hexdigest()
        await client.push_bytes(REPO, big, big_digest)
        digests[big_digest] = len(big)
        download_port = await _download_port(client, big_digest)
        for _ in range(5):  # warm up every path before the baseline
            await _pull(client, digests)
        pids = procs.server_pids(server.port)
        baseline = procs.total(pids).rss
        assert all(procs.reset_peak(pid) for pid in pids)  # VmHWM now follows the flood

        floods = [
            SlowFlood(LOOPBACK, server.port, SLOW, modes=("idle", "head")),
            SlowFlood(LOOPBACK, download_port, SLOW, modes=("idle", "head")),
        ]
        try:
            for flood in floods:
                await flood.start()
            assert [flood.failed for flood in floods] == [0, 0]
            await client.refresh_token([REPO])
            pulls = await asyncio.gather(*(_pull(client, digests) for _ in range(20)))
            assert len(pulls) == 20
            closed = [await flood.wait_closed(CLOSE_BOUND_S) for flood in floods]
            assert closed == [SLOW, SLOW]
            peak = procs.total(pids).hwm
        finally:
            for flood in floods:
                await flood.stop()
        _log.warning(
            "API RSS %.1f MiB, peak beside the slow ones %.1f MiB", baseline / MIB, peak / MIB
        )
        assert peak - baseline < RSS_GROWTH_BOUND, (baseline, peak)

        token = client.headers()["Authorization"].removeprefix("Bearer ")
        stalled = await asyncio.gather(*(_stalled_body(server.port, token) for _ in range(5)))
        for answer in stalled:
            assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        await _pull(client, digests)  # and the server still serves


def test_pulls_succeed_beside_2000_slow_connections_that_the_server_closes(
    tmp_path: Path,
) -> None:
    raise_open_files(4 * SLOW + 2048)
    server = _start(tmp_path, "--workers", "2")
    try:
        asyncio.run(_scenario(server))
    finally:
        server.stop()


async def _uvicorn_scenario(server: MoorageServer) -> None:
    credentials = Credentials(server.admin_username, server.admin_password)
    flood = SlowFlood(LOOPBACK, server.port, UVICORN_SLOW, modes=("idle", "head"))
    async with RegistryClient(Target("moorage", server.url, credentials), 4) as client:
        try:
            await flood.start()
            await client.refresh_token([REPO])
            await _pull(client, await push_image(client, REPO))
            assert await flood.wait_closed(CLOSE_BOUND_S) == UVICORN_SLOW
        finally:
            await flood.stop()
        token = client.headers()["Authorization"].removeprefix("Bearer ")
        assert (await _stalled_body(server.port, token)).startswith(b"HTTP/1.1 408")


def test_uvicorn_closes_connections_slow_to_send_a_head_or_a_body(tmp_path: Path) -> None:
    """uvicorn has no head timeout of its own: Moorage's protocol adds it."""
    raise_open_files(4 * UVICORN_SLOW + 2048)
    server = _start(tmp_path, "--server", "uvicorn", "--workers", "1")
    try:
        asyncio.run(_uvicorn_scenario(server))
    finally:
        server.stop()
