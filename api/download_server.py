"""The blob download listener: signed links answered from the file by the kernel.

A deliberately small HTTP/1.1 server on the worker's own event loop (uvloop under
granian, asyncio under ``moorage dev``). It answers ``GET`` and ``HEAD`` of the links
``core.download_links`` signs, nothing else: the request head is read (bounded in size
and time), the link verified, the blob's file opened through the store
(``BlobStore.blob_file``) and the body sent by one blocking call on a thread of the
listener's own pool (``send_threads``): ``sendfile(2)``, or for a client on the same host a
copy through a buffer (``api.download_send``, ``downloads.send_mode``), so the event loop
is not woken per socket buffer. A client that stops reading gives its thread back: when
the socket stays full for ``api.download_send.STALL_SECONDS``, the rest waits on the event
loop until the socket is writable again, then goes back to a thread. ``Range`` (one
``bytes=`` range) is honoured as on ``/v2``; connections are kept alive between requests.

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
from typing import TYPE_CHECKING, Final

from api.blob_downloads import blob_headers
from api.download_send import copies_for, send_until_stalled
from api.http import parse_range
from core.download_links import LinkError, LinkSigner
from core.download_settings import SendMode
from core.errors import RegistryError

if TYPE_CHECKING:
    from collections.abc import Callable

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


class DownloadServer:
    """One listener of signed download links (one per API worker process)."""

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
    ) -> None:
        self._host, self._port, self._reuse_port = host, port, reuse_port
        self._signer, self._resolve, self._clock = signer, resolve, clock
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
        """Stop accepting and drop the connections in progress."""
        tasks = [t for t in (self._accepting, *self._connections) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        self._executor.shutdown(wait=False)

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
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC) if path is not None else -1
        except FileNotFoundError:
            fd = -1
        if fd < 0:
            message = _error(404, "BLOB_UNKNOWN", "blob unknown to registry")
            await loop.sock_sendall(conn, message)
            return False
        try:
            return await self._send_blob(loop, conn, request, link.digest, fd)
        finally:
            os.close(fd)

    async def _send_blob(
        self,
        loop: asyncio.AbstractEventLoop,
        conn: socket.socket,
        request: _Request,
        digest: Digest,
        fd: int,
    ) -> bool:
        size = os.fstat(fd).st_size
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
        await loop.sock_sendall(conn, _head_bytes(status, headers))
        if request.method == "GET":
            await self._send_body(loop, conn, fd, start, count)
        return request.keep_alive

    async def _send_body(
        self, loop: asyncio.AbstractEventLoop, conn: socket.socket, fd: int, start: int, count: int
    ) -> None:
        """Send the body from threads of this listener's pool, waiting out stalls on the loop.

        Measured faster than waking the event loop for each buffer (``docs/performance.md``).

        Raises:
            TimeoutError: the client left the response unread for the idle timeout.
        """
        offset, end = start, start + count
        copy = copies_for(self._limits.send_mode, conn)
        while offset < end:
            sending = loop.run_in_executor(
                self._executor,
                partial(send_until_stalled, copy=copy),
                conn,
                fd,
                offset,
                end - offset,
            )
            try:
                offset += await asyncio.shield(sending)
            except asyncio.CancelledError:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)  # wakes the thread; ``fd`` is closed after
                with contextlib.suppress(Exception):
                    await sending
                raise
            if offset < end:
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
