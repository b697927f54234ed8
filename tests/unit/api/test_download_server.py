"""The download listener (``api.download_server``) on a real loopback socket and real files.

The server runs on the test's event loop with a clock the test moves; requests are raw
HTTP/1.1 over asyncio streams, so what is checked is exactly what a client receives.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from botocore.exceptions import EndpointConnectionError

from api.download_server import ConnectionLimits, DownloadServer
from core.digests import Digest
from core.download_links import DownloadLink, LinkSigner, link_key
from core.download_settings import SendMode

KEY = link_key(os.urandom(32))
DATA = os.urandom(3 * 1024 * 1024 + 17)
DIGEST = Digest.parse("sha256:" + hashlib.sha256(DATA).hexdigest())
HUGE = os.urandom(24 * 1024 * 1024)  # more than the loopback socket buffers hold
HUGE_DIGEST = Digest.parse("sha256:" + hashlib.sha256(HUGE).hexdigest())
GONE = Digest.parse("sha256:" + hashlib.sha256(b"gone").hexdigest())


@dataclass
class Rig:
    server: DownloadServer
    signer: LinkSigner
    now: list[float]
    store: StreamingStore | None = None

    def target(self, digest: Digest = DIGEST, tenant: str = "t1", expires: int = 100) -> str:
        link = DownloadLink(tenant=tenant, digest=digest, repository="lib/app", expires=expires)
        return self.signer.path_and_query(link)


#: The limits of most tests: everything short, so that stalls end quickly.
SHORT = ConnectionLimits(
    max_connections=8,
    send_threads=8,
    header_timeout=0.5,
    keep_alive_timeout=0.5,
    idle_timeout=0.5,
)


class StreamingStore:
    """Blobs that are not local files, read as an object store's stream (1 MiB pieces)."""

    def __init__(self, files: dict[tuple[str, str], Path]) -> None:
        self._files = files
        #: Streams opened and streams closed (each must be closed, read to its end or not).
        self.opened = 0
        self.closed = 0
        #: The store's calls that fail as if it could not be reached.
        self.down: set[str] = set()

    def _answer(self, call: str) -> None:
        if call in self.down:
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9")

    def stat_blob(self, tenant: str, digest: Digest) -> int | None:
        self._answer("stat")
        path = self._files.get((tenant, str(digest)))
        return path.stat().st_size if path is not None and path.is_file() else None

    def read_blob(
        self, tenant: str, digest: Digest, start: int = 0, end: int | None = None
    ) -> Iterator[bytes]:
        self._answer("read")
        data = self._files[(tenant, str(digest))].read_bytes()
        stop = len(data) if end is None else end + 1
        self.opened += 1

        def pieces() -> Iterator[bytes]:
            try:
                for offset in range(start, stop, 1024 * 1024):
                    yield data[offset : min(offset + 1024 * 1024, stop)]
            finally:
                self.closed += 1

        return pieces()


@contextlib.asynccontextmanager
async def _running(
    tmp_path: Path, limits: ConnectionLimits, *, streamed: bool = False
) -> AsyncIterator[Rig]:
    """A listener over two blobs: local files, or (``streamed``) a store's streams."""
    files = {("t1", str(DIGEST)): tmp_path / "blob"}
    files[("t1", str(DIGEST))].write_bytes(DATA)
    files[("t1", str(HUGE_DIGEST))] = tmp_path / "huge"
    files[("t1", str(HUGE_DIGEST))].write_bytes(HUGE)
    store = StreamingStore(files) if streamed else None

    def resolve(tenant: str, digest: Digest) -> str | None:
        path = files.get((tenant, str(digest)))
        local = path is not None and path.is_file() and not streamed
        return str(path) if local else None

    now = [10.0]
    signer = LinkSigner([KEY])
    server = DownloadServer(
        host="127.0.0.1",
        port=0,
        reuse_port=False,
        signer=signer,
        resolve=resolve,
        clock=lambda: now[0],
        limits=limits,
        reads=store,
    )
    await server.start()
    try:
        yield Rig(server, signer, now, store)
    finally:
        await server.close()


#: Every way a body goes out (send mode, read from a store's stream): every listener test
#: runs with each.
SOURCES = [(SendMode.SENDFILE, False), (SendMode.COPY, False), (SendMode.AUTO, True)]
SOURCE_IDS = ["sendfile", "copy", "stream"]


@pytest.fixture(params=SOURCES, ids=SOURCE_IDS)
async def rig(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    mode, streamed = request.param
    limits = replace(SHORT, send_mode=mode)
    async with _running(tmp_path, limits, streamed=streamed) as running:
        yield running
    if running.store is not None:  # the listener closed: no stream is left open
        assert running.store.closed == running.store.opened


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


async def _read_answer(reader: asyncio.StreamReader, method: str = "GET") -> Answer:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.lower()] = value.strip()
    length = 0 if method == "HEAD" else int(headers.get("content-length", "0"))
    body = await reader.readexactly(length)
    return Answer(int(status_line.split(" ")[1]), headers, body)


async def _exchange(rig: Rig, *requests: str, method: str = "GET") -> list[Answer]:
    reader, writer = await asyncio.open_connection("127.0.0.1", rig.server.port)
    try:
        answers = []
        for request in requests:
            writer.write(request.encode("latin-1"))
            await writer.drain()
            answers.append(await _read_answer(reader, method))
        return answers
    finally:
        writer.close()


def _get(target: str, method: str = "GET", extra: str = "") -> str:
    return f"{method} {target} HTTP/1.1\r\nHost: x\r\n{extra}\r\n"


async def test_a_valid_link_serves_the_whole_blob_with_the_v2_headers(rig: Rig) -> None:
    [answer] = await _exchange(rig, _get(rig.target()))
    assert answer.status == 200
    assert answer.body == DATA
    assert answer.headers["content-length"] == str(len(DATA))
    assert answer.headers["docker-content-digest"] == str(DIGEST)
    assert answer.headers["etag"] == f'"{DIGEST}"'
    assert answer.headers["accept-ranges"] == "bytes"
    assert answer.headers["content-type"] == "application/octet-stream"


async def test_head_and_range_requests_on_one_kept_alive_connection(rig: Rig) -> None:
    head, first, suffix, whole = await _mixed(rig)
    assert (head.status, head.body, head.headers["content-length"]) == (200, b"", str(len(DATA)))
    assert head.headers["docker-content-digest"] == str(DIGEST)
    assert first.status == 206
    assert first.body == DATA[100:1100]
    assert first.headers["content-range"] == f"bytes 100-1099/{len(DATA)}"
    assert suffix.status == 206
    assert suffix.body == DATA[-10:]
    assert whole.status == 200
    assert whole.body == DATA


async def _mixed(rig: Rig) -> list[Answer]:
    reader, writer = await asyncio.open_connection("127.0.0.1", rig.server.port)
    try:
        answers = []
        for method, extra in (
            ("HEAD", ""),
            ("GET", "Range: bytes=100-1099\r\n"),
            ("GET", "Range: bytes=-10\r\n"),
            ("GET", ""),
        ):
            writer.write(_get(rig.target(), method, extra).encode())
            await writer.drain()
            answers.append(await _read_answer(reader, method))
        return answers
    finally:
        writer.close()


async def test_an_unsatisfiable_range_is_416(rig: Rig) -> None:
    [answer] = await _exchange(rig, _get(rig.target(), extra=f"Range: bytes={len(DATA)}-\r\n"))
    assert answer.status == 416
    assert answer.headers["content-range"] == f"bytes */{len(DATA)}"
    assert b"RANGE_INVALID" in answer.body


async def test_expired_forged_and_other_digest_links_are_refused(rig: Rig) -> None:
    valid = rig.target(expires=20)
    forged = LinkSigner([link_key(os.urandom(32))]).path_and_query(
        DownloadLink(tenant="t1", digest=DIGEST, repository="lib/app", expires=100)
    )
    other_digest = valid.replace(str(DIGEST), str(GONE))
    other_tenant = valid.replace("tenant=t1", "tenant=t2")
    for target in (forged, other_digest, other_tenant):
        [answer] = await _exchange(rig, _get(target))
        assert answer.status == 403, target
        assert b"DENIED" in answer.body
        assert DATA[:64] not in answer.body
    [answer] = await _exchange(rig, _get(valid))
    assert answer.status == 200
    rig.now[0] = 20.0
    [answer] = await _exchange(rig, _get(valid))
    assert answer.status == 403
    assert b"expired" in answer.body


async def test_a_signed_link_to_a_blob_that_is_gone_is_404(rig: Rig) -> None:
    [answer] = await _exchange(rig, _get(rig.target(digest=GONE)))
    assert answer.status == 404
    assert b"BLOB_UNKNOWN" in answer.body


@pytest.mark.parametrize("call", ["stat", "read"])
async def test_a_store_that_does_not_answer_gets_503_before_any_byte(
    tmp_path: Path, call: str
) -> None:
    """As on ``/v2``: ``UNAVAILABLE`` with ``Retry-After``, then the store is back."""
    async with _running(tmp_path, SHORT, streamed=True) as running:
        assert running.store is not None
        running.store.down.add(call)
        [refused] = await _exchange(running, _get(running.target()))
        running.store.down.clear()
        [served] = await _exchange(running, _get(running.target()))
    assert refused.status == 503
    assert refused.headers["retry-after"] == "1"
    assert b"UNAVAILABLE" in refused.body
    assert (served.status, served.body) == (200, DATA)


async def test_other_methods_and_bodies_are_refused(rig: Rig) -> None:
    [answer] = await _exchange(rig, _get(rig.target(), "DELETE"))
    assert answer.status == 405
    assert answer.headers["allow"] == "GET, HEAD"
    [answer] = await _exchange(rig, _get(rig.target(), extra="Content-Length: 3\r\n"))
    assert answer.status == 400


async def test_an_oversized_head_is_refused(rig: Rig) -> None:
    [answer] = await _exchange(rig, _get(rig.target(), extra=f"X-Pad: {'a' * 20000}\r\n"))
    assert answer.status == 431


async def test_a_client_that_never_finishes_its_head_is_disconnected(rig: Rig) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", rig.server.port)
    try:
        writer.write(b"GET / HTTP/1.1\r\n")
        await writer.drain()
        async with asyncio.timeout(10):  # the server's idle timeout is 0.5 s
            assert await reader.read() == b""
    finally:
        writer.close()


async def test_a_client_that_stops_reading_is_disconnected(rig: Rig) -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.connect(("127.0.0.1", rig.server.port))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        writer.write(_get(rig.target(digest=HUGE_DIGEST)).encode())
        await writer.drain()
        await asyncio.sleep(5.0)  # stop reading for 10 times the 0.5 s idle timeout
        received = 0
        async with asyncio.timeout(30):
            while chunk := await reader.read(1024 * 1024):
                received += len(chunk)
        assert received < len(HUGE)  # the server gave up and closed the connection
    finally:
        writer.close()


async def test_a_client_trickling_its_head_is_disconnected_at_the_head_timeout(rig: Rig) -> None:
    """A byte every 0.05 s keeps the connection busy, but the head has 0.5 s in all."""
    reader, writer = await asyncio.open_connection("127.0.0.1", rig.server.port)
    head = _get(rig.target()).encode()
    closed = asyncio.ensure_future(reader.read())  # b"" once the server closes
    try:
        for byte in head:  # NOTE: the whole head would take len(head) * 0.05 s (> 5 s)
            if closed.done():
                break
            writer.write(bytes([byte]))
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            await asyncio.sleep(0.05)
        assert closed.done()
        assert closed.exception() is not None or closed.result() == b""
    finally:
        closed.cancel()
        writer.close()


async def test_an_idle_kept_alive_connection_is_closed(rig: Rig) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", rig.server.port)
    try:
        writer.write(_get(rig.target()).encode())
        await writer.drain()
        answer = await _read_answer(reader)
        assert answer.status == 200
        async with asyncio.timeout(10):  # the keep-alive timeout is 0.5 s
            assert await reader.read() == b""
    finally:
        writer.close()


@pytest.mark.parametrize(("mode", "streamed"), SOURCES, ids=SOURCE_IDS)
async def test_a_client_that_stops_reading_holds_no_sending_thread(
    tmp_path: Path, mode: SendMode, streamed: bool
) -> None:
    """With one sending thread, a stalled reader leaves it free for the next download."""
    limits = ConnectionLimits(
        max_connections=8,
        send_threads=1,
        header_timeout=5.0,
        keep_alive_timeout=5.0,
        idle_timeout=120.0,
        send_mode=mode,
    )
    async with _running(tmp_path, limits, streamed=streamed) as running:
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        stalled.connect(("127.0.0.1", running.server.port))
        try:
            stalled.sendall(_get(running.target(digest=HUGE_DIGEST)).encode())
            await asyncio.sleep(2.0)  # the sending thread fills the buffers and gives up
            async with asyncio.timeout(60):
                [answer] = await _exchange(running, _get(running.target()))
            assert answer.status == 200
            assert answer.body == DATA
        finally:
            stalled.close()


@pytest.mark.parametrize(("mode", "streamed"), SOURCES, ids=SOURCE_IDS)
async def test_a_reader_that_pauses_past_the_stall_gets_every_byte_in_order(
    tmp_path: Path, mode: SendMode, streamed: bool
) -> None:
    """The body resumes from the event loop where the stalled thread stopped."""
    limits = replace(SHORT, idle_timeout=30.0, header_timeout=5.0, send_mode=mode)
    async with _running(tmp_path, limits, streamed=streamed) as running:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", running.server.port, limit=64 * 1024
        )
        try:
            writer.write(_get(running.target(digest=HUGE_DIGEST)).encode("latin-1"))
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            received = bytearray()
            for pause in (1.2, 0.0, 1.2):  # twice longer than a sending thread waits
                await asyncio.sleep(pause)
                received += await reader.readexactly(len(HUGE) // 4)
            async with asyncio.timeout(60):
                received += await reader.readexactly(len(HUGE) - len(received))
            assert hashlib.sha256(received).hexdigest() == HUGE_DIGEST.hex
        finally:
            writer.close()
