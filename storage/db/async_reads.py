"""Reads on PostgreSQL awaited on the event loop, for the pull's hot path.

On SQLite the pull's one read runs on the event loop itself (``storage.db.nowait``). On
PostgreSQL a read waits for the server, so it went to a worker thread: a hop that,
with the pool checkout and the unit of work around one statement, cost the API about
three times the CPU of a read on SQLite. An :class:`AsyncReader` instead keeps a few
``psycopg`` asynchronous connections per event loop and awaits the statement there.

Consistency: each connection is in autocommit mode, so a statement is its own read
transaction and sees one committed state of the database, as the regular path's reads
on PostgreSQL do (``SqlMetadata.read`` runs them without a transaction block). The
statements are the regular path's own (:class:`~storage.db.direct.DirectStatement`),
bound and converted for the engine's dialect, and the connections are opened with the
engine's own connection arguments (its type adapters included), so both paths return the
same values.

Failures: a driver error propagates to the caller, which answers from the regular path
instead. When the connection was lost (the server restarted or ended the session), it is
closed, and so is every idle one (after a restart they are all stale), so the next reads
connect afresh; a statement that merely failed leaves its connection in the pool. A read
cancelled while it runs closes its connection, which may still be mid-statement.

A connection belongs to the event loop that opened it: each running loop gets its own
pool, and :meth:`AsyncReader.aclose` closes the calling loop's (its later reads raise).
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections import deque
from collections.abc import Mapping
from typing import Any

import psycopg
from sqlalchemy import Engine

from storage.db.direct import DirectStatement


class _LoopPool:
    """One event loop's connections: up to ``size`` open, the idle ones and the waiters."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.idle: list[psycopg.AsyncConnection[Any]] = []
        self.opened = 0
        self.waiters: deque[asyncio.Future[psycopg.AsyncConnection[Any] | None]] = deque()
        self.closed = False


class AsyncReader:
    """Statements awaited on ``psycopg`` asynchronous connections, a pool per event loop."""

    def __init__(self, engine: Engine, size: int) -> None:
        """Connect as ``engine`` does, up to ``size`` connections per event loop."""
        self._dialect = engine.dialect
        args, params = self._dialect.create_connect_args(engine.url)
        self._args: tuple[Any, ...] = tuple(args)
        self._params: dict[str, Any] = {**params, "autocommit": True}
        self._size = size
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopPool] = (
            weakref.WeakKeyDictionary()
        )

    def _pool(self) -> _LoopPool:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            pool = self._pools[loop] = _LoopPool(self._size)
        return pool

    async def first(
        self, statement: DirectStatement, params: Mapping[str, Any]
    ) -> tuple[Any, ...] | None:
        """The first row of ``statement`` with ``params``, converted as SQLAlchemy would.

        Raises:
            psycopg.Error: The driver's error (the connection it used is closed).
            RuntimeError: This loop's pool was closed.
        """
        text, arguments = statement.bound(self._dialect, params)
        pool = self._pool()
        connection = await self._checkout(pool)
        try:
            cursor = connection.cursor()
            try:
                await cursor.execute(text, arguments)
                raw = await cursor.fetchone()
            finally:
                await cursor.close()
        except psycopg.Error:
            if connection.broken or connection.closed:
                await self._discard(pool, connection, stale=pool.idle)
            else:  # NOTE: the statement failed, the connection is fine (autocommit)
                self._checkin(pool, connection)
            raise
        except BaseException:
            # NOTE: a cancelled statement may leave the connection mid-query
            await self._discard(pool, connection, stale=[])
            raise
        if pool.closed:
            await _close_quietly(connection)
        else:
            self._checkin(pool, connection)
        if raw is None:
            return None
        return statement.converted(self._dialect, params, [raw])[0]

    async def _checkout(self, pool: _LoopPool) -> psycopg.AsyncConnection[Any]:
        if pool.closed:
            raise RuntimeError("the asynchronous reads of this event loop are closed")
        if pool.idle:
            return pool.idle.pop()
        if pool.opened < pool.size:
            pool.opened += 1
            try:
                return await psycopg.AsyncConnection.connect(*self._args, **self._params)
            except BaseException:
                pool.opened -= 1
                self._wake_one(pool)
                raise
        waiter: asyncio.Future[psycopg.AsyncConnection[Any] | None]
        waiter = asyncio.get_running_loop().create_future()
        pool.waiters.append(waiter)
        try:
            handed = await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.result() is not None:
                self._checkin(pool, waiter.result())  # type: ignore[arg-type]
            raise
        # NOTE: ``None``: a connection was discarded; its slot is free to open again
        return handed if handed is not None else await self._checkout(pool)

    def _checkin(self, pool: _LoopPool, connection: psycopg.AsyncConnection[Any]) -> None:
        while pool.waiters:
            waiter = pool.waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        pool.idle.append(connection)

    def _wake_one(self, pool: _LoopPool) -> None:
        """Tell one waiter that a slot was freed (it opens a connection itself)."""
        while pool.waiters:
            waiter = pool.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _discard(
        self,
        pool: _LoopPool,
        connection: psycopg.AsyncConnection[Any],
        *,
        stale: list[psycopg.AsyncConnection[Any]],
    ) -> None:
        """Close ``connection`` and the ``stale`` idle ones; their slots open afresh."""
        closing = [connection, *stale]
        if stale:
            pool.idle = [idle for idle in pool.idle if idle not in stale]
        pool.opened -= len(closing)
        for _ in closing:
            self._wake_one(pool)
        for each in closing:
            await _close_quietly(each)

    async def aclose(self) -> None:
        """Close the calling event loop's connections; its later reads raise."""
        pool = self._pool()
        pool.closed = True
        idle, pool.idle = pool.idle, []
        for connection in idle:
            await _close_quietly(connection)
        while pool.waiters:
            waiter = pool.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(RuntimeError("the asynchronous reads were closed"))


async def _close_quietly(connection: psycopg.AsyncConnection[Any]) -> None:
    with contextlib.suppress(psycopg.Error):
        await connection.close()
