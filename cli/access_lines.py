"""Access lines in the JSON log format, written without the logging machinery per request.

Through :mod:`logging` an access line costs a ``LogRecord`` (with its caller lookup), a
formatter call that builds a dictionary, a ``json.dumps`` of it and a ``write`` system
call: measured, a third of a manifest GET's server CPU (``docs/performance.md``,
*Observability overhead*). :class:`JsonAccessLines` writes the same line, byte for byte
what :class:`cli.logs.JsonFormatter` makes of the record, from a template whose strings are
escaped by the encoder ``json.dumps`` itself uses, into a buffer.

**Loss window.** Buffered lines are written every :data:`FLUSH_SECONDS` by a background
thread (at once past :data:`FLUSH_LINES` lines), when the app shuts down and when the
interpreter exits: an orderly stop loses nothing, a server worker killed outright (SIGKILL,
a crash) loses at most the last :data:`FLUSH_SECONDS` of access lines. Other log lines are
written at once, so an access line can follow lines written up to that long after it;
every line carries its own time.

Writes are whole lines of at most ``PIPE_BUF`` bytes where lines allow, so the server
workers sharing one pipe (a container's stderr) never interleave inside a line.
"""

from __future__ import annotations

import atexit
import logging
import os
import select
import threading
import time
import weakref
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import IO, TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Callable

    from core.request_context import RequestContext

ACCESS_LOGGER: Final = "moorage.access"
#: Longest time a buffered access line waits to be written.
FLUSH_SECONDS: Final = 0.25
#: Buffered lines that are written at once, without waiting for the flush thread.
FLUSH_LINES: Final = 256
#: Bounded wait for a non-blocking output that is full.
_BLOCKED_WAIT_S: Final = 1.0
_BLOCKED_TRIES: Final = 5
#: Bound on the escaped texts kept (an unknown method is escaped every time past it).
_ESCAPED_MAX: Final = 64

_escape: Callable[[str], str] = encode_basestring
_writers: weakref.WeakSet[JsonAccessLines] = weakref.WeakSet()


class JsonAccessLines:
    """Buffered JSON access lines on one file descriptor (the process's stderr).

    Lines are written only while the ``moorage.access`` logger is enabled for INFO, so the
    logger's level and ``disabled`` flag govern them as they govern records.
    """

    def __init__(self, stream: IO[str], *, flush_seconds: float = FLUSH_SECONDS) -> None:
        """Write to ``stream``'s file descriptor.

        A sampled request's line carries its span's ids (``RequestContext.span``).

        Raises:
            OSError: If ``stream`` has no file descriptor (``io.UnsupportedOperation``).
        """
        self._fd = stream.fileno()
        self._flush_seconds = flush_seconds
        self._logger = logging.getLogger(ACCESS_LOGGER)
        self._second = -1
        self._prefix = ""
        #: Escaped route templates and methods (a few of each).
        self._escaped: dict[str, str] = {}
        self._reset()
        _writers.add(self)

    def _reset(self) -> None:
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._writing = threading.Lock()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def write(self, context: RequestContext, status: int, seconds: float, path: str) -> None:
        """Buffer the access line of one answered request."""
        if not self._logger.isEnabledFor(logging.INFO):
            return
        line = self.line(context, status, seconds, path, time.time())
        with self._lock:
            lines = self._lines
            lines.append(line)
            if self._thread is None:
                self._start()
        if len(lines) >= FLUSH_LINES or self._closed.is_set():
            self.flush()

    def line(
        self, context: RequestContext, status: int, seconds: float, path: str, now: float
    ) -> str:
        """The JSON line (with its newline) of a request answered at ``now`` (epoch seconds)."""
        escaped = self._escaped
        method = escaped.get(context.method) or self._escape_once(context.method)
        route = escaped.get(context.route) or self._escape_once(context.route)
        where = _escape(path)
        principal = context.principal
        who = f', "principal": {_escape(principal)}' if principal else ""
        span = context.span
        ids = (
            ""
            if span is None
            else f', "trace_id": "{span.trace_id:032x}", "span_id": "{span.span_id:016x}"'
        )
        # NOTE: escaping works character by character, so the message's escaped text is
        # the escaped method and path joined as they are in the message.
        return (
            f'{{"time": "{self._stamp(now)}", "level": "INFO", "logger": "{ACCESS_LOGGER}", '
            f'"message": {method[:-1]} {where[1:-1]} {status}", '
            f'"request_id": {_escape(context.request_id)}, "route": {route}, '
            f'"method": {method}{who}{ids}, "status": {status!r}, '
            f'"duration_ms": {_milliseconds(seconds)}, "path": {where}}}\n'
        )

    def _escape_once(self, text: str) -> str:
        """``text`` escaped, kept for the next line (route templates and methods only)."""
        escaped = _escape(text)
        if len(self._escaped) < _ESCAPED_MAX:
            self._escaped[text] = escaped
        return escaped

    def _stamp(self, now: float) -> str:
        """``now`` as ``datetime.isoformat(timespec="milliseconds")`` in UTC writes it."""
        # NOTE: truncated to the millisecond, as isoformat does after rounding to the
        # microsecond; the two differ only within half a microsecond below a millisecond.
        second, millis = divmod(int(now * 1000), 1000)
        if second != self._second:
            self._prefix = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = second
        return f"{self._prefix}.{millis:03d}+00:00"

    def flush(self) -> None:
        """Write every buffered line now."""
        with self._writing:
            with self._lock:
                lines, self._lines = self._lines, []
            if lines:
                self._write("".join(lines).encode("utf-8", "backslashreplace"))

    def close(self) -> None:
        """Write what is buffered and stop the flush thread; later lines are written at once."""
        self._closed.set()
        self.flush()

    def _start(self) -> None:
        """Start the flush thread (the caller holds the buffer lock)."""
        self._thread = threading.Thread(target=self._run, name="access-lines", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._closed.wait(self._flush_seconds):
            self.flush()

    def _write(self, data: bytes) -> None:
        """Write ``data`` in pieces of whole lines, each at most ``PIPE_BUF`` where possible."""
        view = memoryview(data)
        start, end = 0, len(data)
        while start < end:
            stop = start + select.PIPE_BUF
            if stop < end:
                cut = data.rfind(b"\n", start, stop)
                if cut < 0:  # one line longer than PIPE_BUF: write it whole
                    cut = data.find(b"\n", stop)
                stop = end if cut < 0 else cut + 1
            else:
                stop = end
            if not self._write_all(view[start:stop]):
                return
            start = stop

    def _write_all(self, piece: memoryview) -> bool:
        """Write ``piece`` completely; ``False`` (lines dropped) when the output fails."""
        tries = 0
        while piece:
            try:
                written = os.write(self._fd, piece)
            except BlockingIOError:
                tries += 1
                if tries > _BLOCKED_TRIES:
                    return False
                select.select([], [self._fd], [], _BLOCKED_WAIT_S)
                continue
            except OSError:
                return False
            piece = piece[written:]
        return True


def _milliseconds(seconds: float) -> str:
    """``repr(round(seconds * 1000, 3))`` with one decimal conversion instead of two."""
    text = f"{seconds * 1000:.3f}".rstrip("0")
    return f"{text}0" if text.endswith(".") else text


def _close_all() -> None:
    """At interpreter exit, write what every writer still buffers."""
    for writer in list(_writers):
        writer.close()


def _after_fork() -> None:
    """A forked child keeps no parent lines, locks or (dead) flush thread."""
    for writer in list(_writers):
        writer._reset()  # noqa: SLF001 - the module's own fork handler


atexit.register(_close_all)
os.register_at_fork(after_in_child=_after_fork)
