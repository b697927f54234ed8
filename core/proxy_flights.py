"""One upstream download per blob, shared by every pull that wants it (single flight).

A :class:`BlobFlight` is the download of one blob into one project's cache. Its leader
(a task not tied to any client) writes each upstream chunk to a local *spool* and to the
cache upload at once; any number of followers (client pulls) read the spool behind it, so
a client streams while the cache fills and a slow or vanished client never stalls or
aborts the fill. The last chunk is held back from followers until the whole blob was
verified (size and digest): a wrong upstream answer reaches no client complete, it ends
every follower's stream with an error (the client sees a truncated body) and nothing is
cached. A follower that joins late reads the spool from its start.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from functools import partial
from typing import Protocol

import anyio.to_thread

_CHUNK = 1024 * 1024


class SpoolReader(Protocol):
    def read(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``offset`` (blocking)."""

    def close(self) -> None: ...


class Spool(Protocol):
    """A scratch file of one download (``adapters.spool``); removed by :meth:`discard`."""

    def write(self, data: bytes) -> None:
        """Append ``data`` (blocking)."""

    def reader(self) -> SpoolReader:
        """A reader opened now (it keeps working after :meth:`discard`)."""

    def discard(self) -> None: ...


SpoolFactory = Callable[[], Spool]


class FetchLocks(Protocol):
    """Locks shared by the API processes of one host (``adapters.spool``)."""

    def try_lock(self, key: str) -> Callable[[], None] | None:
        """Take ``key``'s lock without waiting: its release, or ``None`` if it is held."""


class CachedElsewhereError(Exception):
    """Another process cached the blob meanwhile: read it from the cache."""


class FlightFailedError(Exception):
    """The download failed; ``str()`` says why (safe to show)."""


class BlobFlight:
    """The state of one blob download, shared by its leader and its followers."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        #: Bytes the upstream declared (``None`` until its response arrived).
        self.size: int | None = None
        #: Bytes followers may read (the last chunk waits for verification).
        self.readable = 0
        self.done = False
        #: Another process cached the blob; this flight downloaded nothing.
        self.elsewhere = False
        self.error: str | None = None
        self.followers = 0
        self._changed = asyncio.Condition()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def started(self, size: int) -> None:
        self.size = size
        await self._notify()

    async def release(self, readable: int) -> None:
        self.readable = readable
        await self._notify()

    async def finish(self) -> None:
        self.readable = self.size or 0
        self.done = True
        await self._notify()

    async def cached_elsewhere(self) -> None:
        self.elsewhere = True
        self.done = True
        await self._notify()

    async def fail(self, reason: str) -> None:
        self.error = reason
        await self._notify()

    async def wait_size(self) -> int:
        """The declared size, once known; raises if the flight failed first."""
        async with self._changed:
            await self._changed.wait_for(
                lambda: self.size is not None or self.error is not None or self.elsewhere
            )
        if self.elsewhere:
            raise CachedElsewhereError
        if self.size is None:
            raise FlightFailedError(self.error or "download failed")
        return self.size

    async def wait_done(self) -> None:
        """Until the blob is cached; raises if the flight failed."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.done or self.error is not None)
        if self.error is not None:
            raise FlightFailedError(self.error)

    def _readable_past(self, offset: int) -> bool:
        return self.readable > offset or self.error is not None

    def follow(self) -> AsyncGenerator[bytes, None]:
        """The blob's bytes as they become readable; raises when the flight fails.

        The spool reader is opened here, before anything awaits, so a flight that ends
        meanwhile (and discards its spool) cannot take the bytes away.
        """
        reader = self.spool.reader()
        self.followers += 1
        return self._follow(reader)

    async def _follow(self, reader: SpoolReader) -> AsyncGenerator[bytes, None]:
        offset = 0
        try:
            size = await self.wait_size()
            while offset < size:
                async with self._changed:
                    await self._changed.wait_for(partial(self._readable_past, offset))
                if self.readable <= offset:
                    raise FlightFailedError(self.error or "download failed")
                want = min(_CHUNK, self.readable - offset)
                data = await anyio.to_thread.run_sync(reader.read, offset, want)
                if not data:
                    raise FlightFailedError("spool ended early")
                offset += len(data)
                yield data
        finally:
            self.followers -= 1
            reader.close()
