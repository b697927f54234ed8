"""How the download listener puts a blob's bytes on a socket: ``sendfile(2)`` or a copy.

Both run on a thread of the listener's pool with the socket made blocking for the call,
and both stop when the socket stays full for :data:`STALL_SECONDS` (``SO_SNDTIMEO``),
returning what they sent so the rest waits on the event loop.

Which one (``downloads.send_mode``, :func:`copies_for`):

* ``sendfile`` hands the file's page-cache pages to the socket without copying them: the
  cheapest for the server, and for a client across a network the NIC reads those pages.
* ``copy`` reads the file into a buffer and sends that (what the Go registries do), which
  costs the server one copy more. A client on the same host receives the sender's buffers
  directly over loopback; from a copy it reads memory the sender just wrote, from
  ``sendfile`` cold page-cache pages. Measured over loopback (8 x 128 MiB, Python client):
  the client spends 0.28 CPU-s per GiB receiving a copy against 0.51 receiving
  ``sendfile``, while the server's copy costs it 0.34 instead of 0.06 (``docs/performance.md``).
* ``auto`` (the default) copies to clients on the same host (a loopback peer, or one
  whose address is the listener's own, such as a TLS proxy in front of it) and uses
  ``sendfile`` for the others.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import struct
from collections.abc import Callable, Iterator
from typing import Final

from core.download_settings import SendMode

#: How long a sending thread waits for a full socket before handing it to the event loop.
STALL_SECONDS: Final = 0.5
#: Bytes read from the file per ``send`` in copy mode.
COPY_BYTES: Final = 1024 * 1024


def copies_for(mode: SendMode, conn: socket.socket) -> bool:
    """Whether bodies on ``conn`` are copied (``mode`` ``auto``: the peer is on this host)."""
    if mode is SendMode.COPY:
        return True
    if mode is SendMode.SENDFILE:
        return False
    try:
        peer, own = conn.getpeername()[0], conn.getsockname()[0]
    except OSError:
        return False
    if peer == own:
        return True
    try:
        return ipaddress.ip_address(peer.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def send_until_stalled(conn: socket.socket, fd: int, offset: int, count: int, *, copy: bool) -> int:
    """Send up to ``count`` bytes of ``fd`` from ``offset`` on ``conn``; the bytes sent.

    Fewer than ``count`` only when the socket stayed full for :data:`STALL_SECONDS`.

    Raises:
        ConnectionError: the file ended before ``count`` bytes.
    """
    with _blocking(conn):
        if copy:
            return _copy(conn, fd, offset, count)
        return _sendfile(conn, fd, offset, count)


class FileRange:
    """A range of a file, sent in several calls (each until it is done or stalls)."""

    def __init__(self, fd: int, offset: int, count: int, *, copy: bool) -> None:
        self._fd, self._offset, self._end, self._copy = fd, offset, offset + count, copy

    def send_until_stalled(self, conn: socket.socket) -> int:
        """Send what is left on ``conn`` (:func:`send_until_stalled`); the bytes sent."""
        done = send_until_stalled(
            conn, self._fd, self._offset, self._end - self._offset, copy=self._copy
        )
        self._offset += done
        return done


class StreamedBody:
    """A blob body read from a stream (an object store's response), sent in several calls.

    The stream is opened on the first :func:`send_stream_until_stalled` (on the sending
    thread: opening it is a request to the store); a piece the socket did not take when
    it stalled is kept for the next call, since a stream cannot be read again.
    """

    def __init__(self, open_stream: Callable[[], Iterator[bytes]], count: int) -> None:
        self._open = open_stream
        self._chunks: Iterator[bytes] | None = None
        self._pending = memoryview(b"")
        #: Bytes still to send.
        self.remaining = count

    def open(self) -> Iterator[bytes]:
        """The stream, opened now (a request to the store) if it is not yet."""
        if self._chunks is None:
            self._chunks = self._open()
        return self._chunks

    def next_piece(self) -> memoryview:
        """The kept piece, or the stream's next one (at most :attr:`remaining` bytes).

        Raises:
            ConnectionError: the stream ended before :attr:`remaining` bytes.
        """
        if self._pending:
            piece, self._pending = self._pending, memoryview(b"")
            return piece
        for chunk in self.open():
            if chunk:
                return memoryview(chunk)[: self.remaining]
        raise ConnectionError("the blob's stream ended early")

    def keep(self, piece: memoryview) -> None:
        """Keep the unsent rest of a piece for the next send."""
        self._pending = piece

    def close(self) -> None:
        """Release the stream (its connection to the store), read to the end or not."""
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


def send_stream_until_stalled(conn: socket.socket, body: StreamedBody) -> int:
    """Send what is left of ``body`` on ``conn``; the bytes sent (fewer only on a stall)."""
    done = 0
    with _blocking(conn):
        while body.remaining > 0:
            piece = body.next_piece()
            while piece:
                try:
                    sent = conn.send(piece)
                except BlockingIOError:
                    body.keep(piece)
                    return done
                piece = piece[sent:]
                done += sent
                body.remaining -= sent
    return done


@contextlib.contextmanager
def _blocking(conn: socket.socket) -> Iterator[None]:
    """``conn`` blocking, with the stall timeout as its send timeout; non-blocking after."""
    seconds = int(STALL_SECONDS)
    timeout = struct.pack("ll", seconds, int((STALL_SECONDS - seconds) * 1_000_000))
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeout)
    conn.setblocking(True)
    try:
        yield
    finally:
        conn.setblocking(False)


def _sendfile(conn: socket.socket, fd: int, offset: int, count: int) -> int:
    """One ``sendfile`` normally sends everything: the kernel waits for buffer space."""
    done = 0
    while done < count:
        try:
            sent = os.sendfile(conn.fileno(), fd, offset + done, count - done)
        except BlockingIOError:
            return done
        if sent == 0:
            raise ConnectionError("the blob file ended early")
        done += sent
        if done < count:
            return done  # NOTE: a short send on a blocking socket: the timeout hit
    return done


def _copy(conn: socket.socket, fd: int, offset: int, count: int) -> int:
    """Read pieces of :data:`COPY_BYTES` and send each whole (both calls drop the GIL)."""
    buffer = memoryview(bytearray(min(COPY_BYTES, count)))
    done = 0
    while done < count:
        read = os.preadv(fd, [buffer[: min(len(buffer), count - done)]], offset + done)
        if read == 0:
            raise ConnectionError("the blob file ended early")
        piece = buffer[:read]
        while piece:
            try:
                sent = conn.send(piece)
            except BlockingIOError:
                return done  # NOTE: the unsent rest of the piece is read again next time
            piece = piece[sent:]
            done += sent
    return done
