"""Database engines for SQLite (embedded) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import sqlalchemy
from sqlalchemy import Connection, Engine, event, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import ConnectionPoolEntry

from core.database_settings import DatabaseSettings
from core.settings import Settings
from storage.db.async_reads import AsyncReader
from storage.db.nowait import NowaitReader


@dataclass(frozen=True)
class Engines:
    """A reader and a writer engine (the same engine except on SQLite).

    ``write_lock`` serialises one process's write transactions on SQLite before they ask
    the database for its write lock: SQLite's busy handler sleeps in growing steps, so
    leaving in-process contention to it turns a queue of writers into long stalls. Every
    writer on these engines takes it (see :meth:`writing`).
    """

    read: Engine
    write: Engine
    write_lock: AbstractContextManager[object] = field(default_factory=nullcontext)
    #: SQLite only: the reader for short reads on an event loop thread. Its own small
    #: pool (so a checkout never waits for worker threads' connections) and a busy
    #: timeout of zero: a read that would wait for a lock fails at once instead.
    nowait_read: NowaitReader | None = None
    #: PostgreSQL only: the reader for short reads awaited on an event loop, with
    #: connections of its own per loop (``storage.db.async_reads``).
    async_read: AsyncReader | None = None

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """A connection of the writer engine, held under the process's write lock."""
        with self.write_lock, self.write.connect() as connection:
            yield connection

    @contextmanager
    def writing_briefly(self, wait_seconds: float) -> Iterator[Connection]:
        """A write transaction that waits only about ``wait_seconds`` for each lock.

        For best-effort writes that must not queue behind long writers: this process's
        write lock (SQLite) is polled until the deadline, then SQLite's busy timeout or
        PostgreSQL's ``lock_timeout`` bound the database's own lock waits. The
        transaction commits when the block exits normally.

        Raises:
            TimeoutError: This process's write lock stayed busy.
            sqlalchemy.exc.OperationalError: The database's lock wait timed out.
        """
        lock = self.write_lock
        bounded = lock.bounded(wait_seconds) if isinstance(lock, _ProcessWriteLock) else lock
        with bounded, self.write.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                _set_busy_timeout(connection, int(wait_seconds * 1000))
            try:
                with connection.begin():
                    if not sqlite:
                        milliseconds = int(wait_seconds * 1000)
                        connection.exec_driver_sql(f"SET LOCAL lock_timeout = {milliseconds}")
                    yield connection
            finally:
                if sqlite:
                    _set_busy_timeout(connection, BUSY_TIMEOUT_MS)

    def dispose(self) -> None:
        self.read.dispose()
        if self.write is not self.read:
            self.write.dispose()
        if self.nowait_read is not None:
            self.nowait_read.dispose()


#: How long a SQLite statement waits for another process's lock before failing.
BUSY_TIMEOUT_MS = 30_000


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.close()


def _set_busy_timeout(connection: Connection, milliseconds: int) -> None:
    # NOTE: on the DBAPI connection (autocommit), so no transaction begins for the pragma.
    cursor = connection.connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={milliseconds}")
    finally:
        cursor.close()


def _begin_deferred(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN")


def _begin_immediate(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_engine(url: str, *, immediate: bool) -> Engine:
    engine = sqlalchemy.create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        # NOTE: as many pooled connections as anyio's worker threads: a smaller pool
        # opened and closed an overflow connection (with its PRAGMAs) per request at c32.
        pool_size=40,
        max_overflow=8,
    )
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _begin_immediate if immediate else _begin_deferred)
    return engine


#: Connections of the event loop reader: one loop thread per process uses one at a time.
_NOWAIT_POOL_SIZE = 2


class _ProcessWriteLock:
    """This process's threads queue on an ``RLock``; processes queue on ``flock``.

    ``flock`` wakes the next waiter as soon as the holder releases it, where SQLite's
    busy handler would sleep in growing steps; held for a whole write transaction.
    """

    def __init__(self, path: Path) -> None:
        self._threads = threading.RLock()
        self._path = path
        self._fd: int | None = None
        self._depth = 0

    def __enter__(self) -> Self:
        self._threads.acquire()
        try:
            if self._depth == 0:
                if self._fd is None:
                    self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            self._depth += 1
        except BaseException:
            self._threads.release()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        try:
            self._depth -= 1
            if self._depth == 0 and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    @contextmanager
    def bounded(self, wait_seconds: float) -> Iterator[None]:
        """Hold the lock like ``with self``, but raise ``TimeoutError`` after the wait."""
        deadline = time.monotonic() + wait_seconds
        if not self._threads.acquire(timeout=wait_seconds):
            raise TimeoutError("the write lock is busy in this process")
        try:
            if self._depth == 0:
                self._flock_until(deadline)
            self._depth += 1
        except BaseException:
            self._threads.release()
            raise
        try:
            yield
        finally:
            self.__exit__()

    def _flock_until(self, deadline: float) -> None:
        if self._fd is None:
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        pause = 0.002
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise TimeoutError("the write lock is busy in another process") from None
                time.sleep(pause)
                pause = min(pause * 2, 0.05)
            else:
                return


def create_engines(settings: Settings) -> Engines:
    """Build the engines for the configured database.

    SQLite runs in WAL mode with foreign keys on; write transactions start with
    ``BEGIN IMMEDIATE`` so concurrent writers queue on the busy timeout instead of
    failing on a lock upgrade, while readers never wait for writers. SQLite also gets
    ``nowait_read``, whose reads fail instead of waiting (for an event loop thread).
    PostgreSQL gets one pool sized by ``settings.database`` for both engines, and
    ``async_read`` unless ``async_read_connections`` is 0; a checkout that waits longer
    than the pool's timeout raises ``sqlalchemy.exc.TimeoutError``.
    """
    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return Engines(
            read=_sqlite_engine(url, immediate=False),
            write=_sqlite_engine(url, immediate=True),
            write_lock=_ProcessWriteLock(settings.data_dir / "moorage.db.write-lock"),
            nowait_read=NowaitReader(str(make_url(url).database), _NOWAIT_POOL_SIZE),
        )
    pools = settings.database
    engine = _postgres_engine(url, pools)
    # NOTE: several awaited reads are in flight on one event loop while the server answers.
    size = pools.async_read_connections
    reader = AsyncReader(engine, size) if size else None
    return Engines(read=engine, write=engine, async_read=reader)


#: A pooled PostgreSQL connection unused for longer than this is pinged before it is
#: handed out (a busy pool's connections are not: see ``_postgres_engine``).
PING_IDLE_SECONDS = 1.0
_LAST_USED = "moorage_last_used"


def _postgres_engine(url: str, pools: DatabaseSettings) -> Engine:
    """An engine whose pool pings only connections that sat idle.

    A ping per checkout (``pool_pre_ping``) is a round trip per transaction, a good part
    of a small one. Here a connection back in the pool for less than
    :data:`PING_IDLE_SECONDS` is handed out as it is; an older one is pinged and, if the
    server does not answer, replaced (the pool retries with a new connection). After a
    server restart, a connection that was in use a moment before fails on its first
    statement instead: that request gets a database error (503 to the client, who may
    retry) and the driver's disconnect marks every older pooled connection invalid, so
    the next checkouts connect afresh.
    """
    engine = sqlalchemy.create_engine(
        url,
        pool_size=pools.pool_size,
        max_overflow=pools.max_overflow,
        pool_timeout=pools.pool_timeout_seconds,
    )
    dialect = engine.dialect

    def used(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_LAST_USED] = time.monotonic()

    def ping_if_idle(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        last = record.info.get(_LAST_USED)
        if last is not None and time.monotonic() - last < PING_IDLE_SECONDS:
            return
        try:
            alive = dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError("the pooled connection did not answer a ping") from exc
        if not alive:
            raise DisconnectionError("the pooled connection did not answer a ping")

    event.listen(engine, "connect", used)
    event.listen(engine, "checkin", used)
    event.listen(engine, "checkout", ping_if_idle)
    return engine


def create_db_engine(settings: Settings) -> Engine:
    """The writer engine (what migrations and background jobs use)."""
    return create_engines(settings).write
