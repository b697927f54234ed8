"""The blob download listener: signed links answered from the file by the kernel.

A deliberately small HTTP/1.1 server on the worker's own event loop (uvloop under
granian, asyncio under ``moorage dev``). It answers ``GET`` and ``HEAD`` of the links
``core.download_links`` signs, nothing else: the request head is read (bounded in size
and time), the link verified, the blob's file opened through the store
(``BlobStore.blob_file``) and the body sent by one blocking call on a thread of the
listener's own pool (``send_threads``): ``sendfile(2)``, or for a client on the same host a
copy through a buffer (``api.download_send``, ``downloads.send_mode``), so the event loop
is not woken per socket buffer. A blob that is not a local file (S3) is read from the
store's stream by the same threads, piece by piece (``BlobStore.stat_blob`` and
``read_blob``, both asked before the response begins). A client that stops reading gives
its thread back: when the socket stays full for ``api.download_send.STALL_SECONDS``, the
rest waits on the event loop until the socket is writable again, then goes back to a
thread. ``Range`` (one ``bytes=`` range) is honoured as on ``/v2``; connections are kept
alive between requests.

Guarantees: a forged, altered or expired link gets ``403`` and no byte of any blob; a
link whose blob is gone gets ``404``; a client that has not sent a whole request head
``header_timeout`` after connecting (or ``keep_alive_timeout`` plus ``header_timeout``
after the previous response) is disconnected, as is one that leaves the response unread
for ``idle_timeout``; at most ``max_connections`` connections are served at once (more
wait in the accept queue), and slow readers hold no thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Final, Protocol, TypeVar

from api.blob_downloads import blob_headers
from api.download_send import (
    FileRange,
    StreamedBody,
    copies_for,
    send_stream_until_stalled,
)
from api.http import parse_range
from api.unavailable import DEPENDENCY_ERRORS, RETRY_AFTER, dependency_of, unavailable_error
from core.download_links import LinkError, LinkSigner
from core.download_settings import SendMode
from core.errors import RegistryError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator

    from core.digests import Digest

_log = logging.getLogger("moorage.downloads")

MAX_HEAD_BYTES: Final = 16 * 1024
_RECV_BYTES: Final = 16 * 1024
_REASONS: Final = {
    200: "OK",
    206: "Partial Content",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    416: "Range Not Satisfiable",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


class _BadRequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class _Request:
    method: str
    target: str
    headers: dict[str, str]
    keep_alive: bool


def _parse_head(head: bytes) -> _Request:
    try:
        text = head.decode("latin-1")
        request_line, *lines = text.split("\r\n")
        method, target, version = request_line.split(" ")
    except ValueError as exc:
        raise _BadRequestError(400, "malformed request line") from exc
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise _BadRequestError(400, "unsupported HTTP version")
    headers: dict[str, str] = {}
    for line in lines:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise _BadRequestError(400, "malformed header line")
        headers[name.lower()] = value.strip()
    if headers.get("transfer-encoding") or headers.get("content-length", "0") != "0":
        raise _BadRequestError(400, "a download request has no body")
    connection = headers.get("connection", "").lower()
    keep_alive = version == "HTTP/1.1" and connection != "close"
    return _Request(method, target, headers, keep_alive)


def _head_bytes(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS[status]}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _error(status: int, code: str, message: str, extra: dict[str, str] | None = None) -> bytes:
    body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
    headers = {
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        "Connection": "close",
        **(extra or {}),
    }
    return _head_bytes(status, headers) + body


_NOT_FOUND: Final = _error(404, "BLOB_UNKNOWN", "blob unknown to registry")
_T = TypeVar("_T")


def _unavailable(what: str) -> bytes:
    """The ``503`` a request gets while ``what`` (the blob store) does not answer."""
    failed = unavailable_error(what)
    return _error(503, str(failed.code.value), failed.message, {"Retry-After": RETRY_AFTER})


class _StoreUnavailableError(Exception):
    """The blob store did not answer before the response began."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


async def _nothing() -> None:
    """Nothing to release."""


@dataclass(frozen=True, slots=True)
class _Body:
    """A response body ready to go: ``send`` it, then ``close`` it whatever happened."""

    send: Callable[[], Awaitable[object]]
    close: Callable[[], Awaitable[object]] = _nothing


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """What one listener allows its connections (``downloads`` and ``server`` settings)."""

    max_connections: int
    send_threads: int
    #: Seconds to send a whole request head, from connecting.
    header_timeout: float
    #: Seconds a connection may stay idle between two requests.
    keep_alive_timeout: float
    #: Seconds a response may stay unread.
    idle_timeout: float
    backlog: int = 1024
    #: How bodies go on the socket (``api.download_send``).
    send_mode: SendMode = SendMode.AUTO


class BlobReads(Protocol):
    """How the listener reads a blob that is not a local file (``core.ports.BlobStore``)."""

    def stat_blob(self, tenant: str, digest: Digest) -> int | None: ...

    def read_blob(
        self, tenant: str, digest: Digest, start: int = 0, end: int | None = None
    ) -> Iterator[bytes]: ...


class DownloadServer:
    """One listener of signed download links (one per API worker process).

    A blob ``resolve`` finds as a local file is sent from the file; any other is read
    from ``reads`` (an object store) when given, on the listener's sending threads.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        reuse_port: bool,
        signer: LinkSigner,
        resolve: Callable[[str, Digest], str | None],
        clock: Callable[[], float],
        limits: ConnectionLimits,
        reads: BlobReads | None = None,
    ) -> None:
        self._host, self._port, self._reuse_port = host, port, reuse_port
        self._signer, self._resolve, self._clock = signer, resolve, clock
        self._reads = reads
        self._limits = limits
        self._slots = asyncio.Semaphore(limits.max_connections)
        self._idle = limits.idle_timeout
        self._socket: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._executor = ThreadPoolExecutor(
            limits.send_threads, thread_name_prefix="moorage-download"
        )

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        if self._socket is None:
            raise RuntimeError("the download listener is not started")
        port: int = self._socket.getsockname()[1]
        return port

    async def start(self) -> int:
        """Bind, listen and start accepting; return the bound port."""
        infos = socket.getaddrinfo(
            self._host, self._port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if self._reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
            sock.listen(self._limits.backlog)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._socket = sock
        self._accepting = asyncio.get_running_loop().create_task(self._accept_loop(sock))
        return self.port

    async def close(self) -> None:
        """Stop accepting and drop the connections in progress.

        Returns once the sending threads have finished what was handed to them (each
        step is bounded by the stall timeout or the store's own timeouts), so every
        stream a request opened from the store is closed by then.
        """
        tasks = [t for t in (self._accepting, *self._connections) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        await asyncio.to_thread(self._executor.shutdown, wait=True)

    async def _accept_loop(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._slots.acquire()
            try:
                conn, _ = await loop.sock_accept(sock)
            except OSError as exc:
                self._slots.release()
                _log.warning("download listener: accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            except BaseException:
                self._slots.release()
                raise
            conn.setblocking(False)
            task = loop.create_task(self._serve(conn))
            self._connections.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._connections.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None:
            _log.debug("download connection failed", exc_info=task.exception())

    async def _serve(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        buffer = bytearray()
        first = True
        try:
            while True:
                head = await self._read_head(loop, conn, buffer, first=first)
                first = False
                if head is None:
                    return
                try:
                    request = _parse_head(head)
                except _BadRequestError as bad:
                    await loop.sock_sendall(conn, _error(bad.status, "UNSUPPORTED", str(bad)))
                    return
                if not await self._answer(loop, conn, request):
                    return
        except (OSError, TimeoutError):
            return
        finally:
            conn.close()

    async def _read_head(
        self,
        loop: asyncio.AbstractEventLoop,
        conn: socket.socket,
        buffer: bytearray,
        *,
        first: bool,
    ) -> bytes | None:
        """The next request head, or ``None`` when the client closed between requests.

        Raises:
            TimeoutError: the client was idle or slow beyond the limits.
        """
        if not first and not buffer:
            async with asyncio.timeout(self._limits.keep_alive_timeout):
                data = await loop.sock_recv(conn, _RECV_BYTES)
            if not data:
                return None
            buffer += data
        async with asyncio.timeout(self._limits.header_timeout):
            while True:
                end = buffer.find(b"\r\n\r\n", 0, MAX_HEAD_BYTES + 4)
                if end >= 0:
                    head = bytes(buffer[:end])
                    del buffer[: end + 4]
                    return head
                if len(buffer) >= MAX_HEAD_BYTES + 4:
                    message = _error(431, "UNSUPPORTED", "request head too large")
                    await loop.sock_sendall(conn, message)
                    return None
                data = await loop.sock_recv(conn, _RECV_BYTES)
                if not data:
                    return None
                buffer += data

    async def _answer(
        self, loop: asyncio.AbstractEventLoop, conn: socket.socket, request: _Request
    ) -> bool:
        """Answer one request; whether the connection may serve another."""
        if request.method not in ("GET", "HEAD"):
            extra = {"Allow": "GET, HEAD"}
            message = _error(405, "UNSUPPORTED", "only GET and HEAD", extra)
            await loop.sock_sendall(conn, message)
            return False
        try:
            link = self._signer.verify(request.target, self._clock())
        except LinkError as refused:
            await loop.sock_sendall(conn, _error(403, "DENIED", str(refused)))
            return False
        path = self._resolve(link.tenant, link.digest)
        if path is None and self._reads is not None:
            streamed = (self._reads, link.tenant, link.digest)
            return await self._answer_streamed(loop, conn, request, *streamed)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC) if path is not None else -1
        except FileNotFoundError:
            fd = -1
        if fd < 0:
            await loop.sock_sendall(conn, _NOT_FOUND)
            return False
        try:
            size = os.fstat(fd).st_size
            copy = copies_for(self._limits.send_mode, conn)

            async def opened(start: int, count: int) -> _Body:
                send_some = partial(FileRange(fd, start, count, copy=copy).send_until_stalled, conn)
                return _Body(partial(self._send_body, loop, conn, count, send_some))

            return await self._send_blob(loop, conn, request, link.digest, size, opened)
        finally:
            os.close(fd)

    async def _answer_streamed(
        self,
        loop: asyncio.AbstractEventLoop,
        conn: socket.socket,
        request: _Request,
        reads: BlobReads,
        tenant: str,
        digest: Digest,
    ) -> bool:
        """Answer from the blob store's stream (a blob that is not a local file).

        The blob's size and its stream are asked for before the response begins, so a
        store that does not answer gets ``503 UNAVAILABLE`` (as on ``/v2``); a stream that
        breaks later cuts the body short, which the client sees and retries.
        """
        try:
            size = await self._store_call(loop, reads.stat_blob, tenant, digest)
            if size is None:
                await loop.sock_sendall(conn, _NOT_FOUND)
                return False

            async def opened(start: int, count: int) -> _Body:
                end = start + count - 1
                streamed = StreamedBody(partial(reads.read_blob, tenant, digest, start, end), count)
                await self._store_call(loop, streamed.open)
                send_some = partial(send_stream_until_stalled, conn, streamed)
                return _Body(
                    partial(self._send_body, loop, conn, count, send_some),
                    partial(loop.run_in_executor, self._executor, streamed.close),
                )

            return await self._send_blob(loop, conn, request, digest, size, opened)
        except _StoreUnavailableError as failed:
            await loop.sock_sendall(conn, _unavailable(failed.what))
            return False

    async def _store_call(
        self, loop: asyncio.AbstractEventLoop, call: Callable[..., _T], *args: object
    ) -> _T:
        """``call(*args)`` on a sending thread.

        Raises:
            _StoreUnavailableError: the store did not answer (a connection error).
        """
        try:
            return await loop.run_in_executor(self._executor, call, *args)
        except DEPENDENCY_ERRORS as exc:
            what = dependency_of(exc)
            if what is None:
                raise
            raise _StoreUnavailableError(what) from exc

    async def _send_blob(
        self,
        loop: asyncio.AbstractEventLoop,
        conn: socket.socket,
        request: _Request,
        digest: Digest,
        size: int,
        opened: Callable[[int, int], Awaitable[_Body]],
    ) -> bool:
        """Send the head, then (``GET``) the body ``opened(start, count)`` gives.

        The body is opened before the head is sent: what fails there fails the request
        before any byte of the response.
        """
        headers = {"Content-Type": "application/octet-stream", **blob_headers(digest, size)}
        status, start, count = 200, 0, size
        try:
            byte_range = parse_range(request.headers.get("range"), size)
        except RegistryError as invalid:
            extra = {"Content-Range": f"bytes */{size}"}
            message = _error(416, str(invalid.code.value), invalid.message, extra)
            await loop.sock_sendall(conn, message)
            return False
        if byte_range is not None and request.method == "GET":
            first, last = byte_range
            status, start, count = 206, first, last - first + 1
            headers["Content-Length"] = str(count)
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        if not request.keep_alive:
            headers["Connection"] = "close"
        body = await opened(start, count) if request.method == "GET" and count > 0 else None
        try:
            await loop.sock_sendall(conn, _head_bytes(status, headers))
            if body is not None:
                await body.send()
        finally:
            if body is not None:
                await body.close()
        return request.keep_alive

    async def _send_body(
        self,
        loop: asyncio.AbstractEventLoop,
        conn: socket.socket,
        count: int,
        send_some: Callable[[], int],
    ) -> None:
        """Send ``count`` bytes by ``send_some`` calls on this listener's threads.

        Each call sends until done or until the socket stays full; the stall is waited out
        on the event loop. Measured faster than waking the event loop for each buffer
        (``docs/performance.md``).

        Raises:
            TimeoutError: the client left the response unread for the idle timeout.
        """
        sent = 0
        while sent < count:
            sending = loop.run_in_executor(self._executor, send_some)
            try:
                sent += await asyncio.shield(sending)
            except asyncio.CancelledError:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)  # wakes the thread; the source closes after
                with contextlib.suppress(Exception):
                    await sending
                raise
            if sent < count:
                async with asyncio.timeout(self._idle):
                    await _writable(loop, conn)


async def _writable(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> None:
    """Wait until ``conn`` can take more bytes."""
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    fd = conn.fileno()
    loop.add_writer(fd, wake)
    try:
        await ready
    finally:
        loop.remove_writer(fd)
