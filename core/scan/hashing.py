"""A running hash computed on its own thread, so hashing a layer overlaps decompressing it.

``hashlib`` releases the GIL while it hashes a large buffer, and so does ``zlib`` while it
inflates: a layer's compressed digest, its ``diff_id`` and its decompression can use
different CPUs. :class:`BackgroundHash` takes the chunks in order, holds at most
``ahead`` of them not yet hashed (``update`` waits beyond that, so memory stays bounded),
and gives the digest once every chunk given before is hashed. With a single CPU the
chunks are hashed on the calling thread instead.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading

#: Chunks given to a hash and not yet hashed, at most.
AHEAD = 4


def _several_cpus() -> bool:
    try:
        return len(os.sched_getaffinity(0)) > 1
    except AttributeError:  # NOTE: not on every platform
        return (os.cpu_count() or 1) > 1


#: Whether hashes run on threads of their own: with one CPU a thread only adds hand-overs.
THREADED = _several_cpus()


class BackgroundHash:
    """A ``hashlib`` hash fed from the calling thread and computed on another.

    The thread starts with the first chunk and ends with :meth:`hexdigest` or
    :meth:`close`; a hash that is never fed starts no thread. With ``threaded`` false the
    chunks are hashed as they are given, on the calling thread.
    """

    def __init__(self, algorithm: str, ahead: int = AHEAD, threaded: bool = THREADED) -> None:
        self._threaded = threaded
        self._hash = hashlib.new(algorithm)
        self.name: str = self._hash.name
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=ahead)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._digest: str | None = None
        self._closed = False

    def update(self, data: bytes) -> None:
        """Hash ``data`` after every chunk given before it."""
        if self._digest is not None or self._closed:
            raise ValueError("the hash is already final or closed")
        if not data:
            return
        if not self._threaded:
            self._hash.update(data)
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="scan-hash", daemon=True)
            self._thread.start()
        self._queue.put(data)

    def hexdigest(self) -> str:
        """The digest of every chunk given (waits for the thread to hash them)."""
        if self._digest is None:
            if self._closed:
                raise ValueError("the hash was closed")
            self._stop()
            if self._error is not None:
                raise self._error
            self._digest = self._hash.hexdigest()
        return self._digest

    def close(self) -> None:
        """Stop the thread without a digest (the stream failed); safe to call twice."""
        self._closed = True
        self._stop()

    def _stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()

    def _run(self) -> None:
        update = self._hash.update
        failed = False
        while (data := self._queue.get()) is not None:
            if failed:
                continue  # NOTE: keep taking chunks so the feeding thread never waits forever
            try:
                update(data)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller by hexdigest
                self._error, failed = exc, True
