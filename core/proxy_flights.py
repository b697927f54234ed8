"""One upstream download per blob, shared by every pull that wants it (single flight).

A :class:`BlobFlight` is the download of one blob into one project's cache. Its leader
(a task not tied to any client) writes each upstream chunk to the cache upload; any
number of followers (client pulls) read the flight's *spool* behind it: the upload's own
file when the blob store keeps uploads in local files (:meth:`BlobFlight.adopt`, so each
byte is written once), else a local scratch file the leader writes as well. So
a client streams while the cache fills and a slow or vanished client never stalls or
aborts the fill. The last chunk is held back from followers until the whole blob was
verified (size and digest): a wrong upstream answer reaches no client complete, it ends
every follower's stream with an error (the client sees a truncated body) and nothing is
cached. A follower that joins late reads the spool from its start.

Across the API processes of one host only one downloads a blob (``FetchLocks``); the
leader tells the others where its spool is (:class:`FlightNotices`), and a process whose
pulls wait for that download *follows* it: its flight reads the leader's spool
(:meth:`BlobFlight.redirect`) and releases bytes as the leader writes them, holding back
the last :data:`HOLD_BYTES` until the leader says the blob was verified
(:meth:`BlobFlight.peer_progress`). So a pull streams whichever process it reached, and
the guarantee above holds for it too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import anyio.to_thread

_CHUNK = 1024 * 1024
#: Bytes of a peer's download held back from followers until the peer verified it.
HOLD_BYTES = 1024 * 1024


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

    def name(self) -> str:
        """Where the other processes of the host open it (:meth:`FlightNotices.open`)."""

    def discard(self) -> None: ...


class Spools(Protocol):
    """Where flights keep the bytes they download (``adapters.spool``)."""

    def new(self) -> Spool:
        """An empty scratch file of this process."""

    def over(self, path: str) -> Spool:
        """A spool of ``path``, a file another writer appends to (the cache's own upload).

        Its readers read what that writer wrote; :meth:`Spool.write` is refused, and
        :meth:`Spool.discard` leaves the file to its writer. The file may be moved or
        removed meanwhile: the spool keeps reading what was written.
        """


class FetchLocks(Protocol):
    """Locks shared by the API processes of one host (``adapters.spool``)."""

    def try_lock(self, key: str) -> Callable[[], None] | None:
        """Take ``key``'s lock without waiting: its release, or ``None`` if it is held."""


@dataclass(frozen=True, slots=True)
class Notice:
    """What the process downloading a blob tells the host's others about it."""

    #: The leader's spool (:meth:`Spool.name`).
    spool: str
    #: Bytes the upstream declared.
    size: int
    #: The whole blob arrived and matched its size and digest.
    verified: bool
    #: Bytes in the spool when the notice was read (``0`` when publishing).
    written: int = 0


class FlightNotices(Protocol):
    """Downloads in progress on this host, one notice per lock key (``adapters.spool``).

    Only the process holding a key's ``FetchLocks`` lock publishes or withdraws its
    notice; it withdraws it before it releases the lock, so a notice seen while the lock
    is held belongs to the holder (a notice of a process that died is never returned).
    """

    def publish(self, key: str, notice: Notice) -> None:
        """Tell (or update) ``key``'s notice (replaced atomically)."""

    def withdraw(self, key: str) -> None:
        """Remove ``key``'s notice, if any."""

    def look(self, key: str) -> Notice | None:
        """``key``'s notice with the spool's current length, or ``None``."""


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
        #: The spool of another process's download this flight follows (:meth:`redirect`).
        self.peer_spool: str | None = None
        self._changed = asyncio.Condition()
        self._open: Callable[[], SpoolReader] = spool.reader
        self._readers: dict[int, SpoolReader] = {}
        self._next_follower = 0

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

    @property
    def failed(self) -> bool:
        """Whether the download failed: its followers fail, and no new pull may join it."""
        return self.error is not None

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

    @property
    def follows_peer(self) -> bool:
        """Whether this flight reads another process's download."""
        return self.peer_spool is not None

    def redirect(self, spool: Spool) -> None:
        """Read another process's download from now on: follow its download of the blob.

        ``spool`` is a view of the peer's file (``Spools.over``), opened before the peer
        could finish, so followers that join after the peer moved or removed the file
        still read it. As :meth:`adopt`: the followers' readers move before this returns
        and the flight's own (empty) spool is discarded; allowed only before the flight
        started.

        Raises:
            OSError: a reader could not be opened (nothing changed).
        """
        self.adopt(spool)
        self.peer_spool = spool.name()

    def adopt(self, spool: Spool) -> None:
        """Keep the download in ``spool`` instead (such as the cache's upload file).

        The followers' readers move to ``spool`` before this returns and the flight's
        own scratch spool is discarded; allowed only before the flight started.

        Raises:
            OSError: a reader could not be opened (nothing changed).
        """
        self._reopen(spool.reader)
        self.spool.discard()
        self.spool = spool

    def _reopen(self, open_reader: Callable[[], SpoolReader]) -> None:
        """Give every follower a reader from ``open_reader``, all or none."""
        if self.size is not None:
            raise ValueError("a started flight cannot switch spools")
        fresh: dict[int, SpoolReader] = {}
        try:
            for number in self._readers:
                fresh[number] = open_reader()
        except OSError:
            for reader in fresh.values():
                reader.close()
            raise
        for number, reader in fresh.items():
            self._readers[number].close()
            self._readers[number] = reader
        self._open = open_reader

    async def peer_progress(self, notice: Notice) -> None:
        """Release what the followed download wrote, all of it once verified.

        Until the peer verified the blob, its last :data:`HOLD_BYTES` stay back, so no
        client of this process gets a wrong blob complete either.
        """
        if self.size is None:
            await self.started(notice.size)
        readable = notice.size
        if not notice.verified:
            readable = max(min(notice.written, notice.size - HOLD_BYTES), 0)
        if readable > self.readable:
            await self.release(readable)

    def follow(self) -> AsyncGenerator[bytes, None]:
        """The blob's bytes as they become readable; raises when the flight fails.

        The reader is opened here, before anything awaits, so a flight that ends
        meanwhile (and discards its spool) cannot take the bytes away.
        """
        number = self._next_follower
        self._next_follower += 1
        with contextlib.suppress(OSError):  # NOTE: no reader: the follower fails at once
            self._readers[number] = self._open()
        self.followers += 1
        return self._follow(number)

    async def _follow(self, number: int) -> AsyncGenerator[bytes, None]:
        offset = 0
        try:
            reader = self._readers.get(number)
            if reader is None:
                raise FlightFailedError("the download's spool is gone")
            size = await self.wait_size()
            while offset < size:
                async with self._changed:
                    await self._changed.wait_for(partial(self._readable_past, offset))
                if self.readable <= offset:
                    raise FlightFailedError(self.error or "download failed")
                want = min(_CHUNK, self.readable - offset)
                # NOTE: looked up per read: a redirect replaces it before the flight starts
                reader = self._readers[number]
                data = await anyio.to_thread.run_sync(reader.read, offset, want)
                if not data:
                    raise FlightFailedError("spool ended early")
                offset += len(data)
                yield data
        finally:
            self.followers -= 1
            left = self._readers.pop(number, None)
            if left is not None:
                left.close()
