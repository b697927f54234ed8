"""Reads on SQLite that never wait, for callers on an event loop thread.

A :class:`NowaitReader` runs one prepared ``SELECT`` on a plain ``sqlite3`` connection of
its own small pool, in autocommit mode: the statement is its own read transaction, so it
sees one committed state of the database. In WAL mode a reader never waits for writers;
the busy timeout is zero, so a read that would wait for a lock (a checkpoint, a schema
change) fails at once with :class:`~core.ports.ReadWouldWait`, and so does a checkout
when every pooled connection is in use. The caller then runs the read on a worker thread.

Skipping the ORM layer here is deliberate: this is the pull's hot path, where pool
checkout, ``BEGIN``/``COMMIT`` round trips and result processing cost several times the
query itself. Statements are compiled once from the same SQLAlchemy expressions the
regular sessions use, so both paths ask the database the same question.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select
from sqlalchemy.dialects import sqlite

from core.ports import ReadWouldWait

#: ``SQLITE_BUSY`` and ``SQLITE_LOCKED`` (primary result codes).
_BUSY_CODES = frozenset({5, 6})
_DIALECT = sqlite.dialect()


@dataclass(frozen=True, slots=True)
class Prepared:
    """A statement compiled for ``sqlite3``.

    Its SQL, the order of its parameters, and the column types' result conversions (the
    same SQLAlchemy applies to its own rows, e.g. timestamps made aware).
    """

    sql: str
    names: tuple[str, ...]
    conversions: tuple[tuple[int, Callable[[Any], Any]], ...]

    @classmethod
    def of(cls, statement: Select[Any]) -> Prepared:
        compiled = statement.compile(dialect=_DIALECT)
        conversions = []
        for index, column in enumerate(statement.selected_columns):
            convert = column.type.dialect_impl(_DIALECT).result_processor(_DIALECT, None)
            if convert is not None:
                conversions.append((index, convert))
        return cls(compiled.string, tuple(compiled.positiontup or ()), tuple(conversions))

    def row(self, raw: tuple[Any, ...]) -> tuple[Any, ...]:
        """A raw ``sqlite3`` row with every column converted as SQLAlchemy would."""
        if not self.conversions:
            return raw
        values = list(raw)
        for index, convert in self.conversions:
            values[index] = convert(values[index])
        return tuple(values)


class NowaitReader:
    """A pool of up to ``size`` read-only connections whose reads never wait."""

    def __init__(self, database: str, size: int = 2) -> None:
        self._database, self._size = database, size
        self._idle: list[sqlite3.Connection] = []
        self._opened = 0
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self._database, timeout=0, isolation_level=None, check_same_thread=False
        )
        connection.execute("PRAGMA busy_timeout=0")
        connection.execute("PRAGMA query_only=1")
        return connection

    def checkout(self) -> sqlite3.Connection:
        """An idle connection, or a new one below the pool size; never waits.

        Raises:
            ReadWouldWait: Every connection of the pool is in use.
        """
        with self._lock:
            if self._idle:
                return self._idle.pop()
            if self._opened >= self._size:
                raise ReadWouldWait("no free connection")
            self._opened += 1
        try:
            return self._connect()
        except BaseException:
            with self._lock:
                self._opened -= 1
            raise

    def checkin(self, connection: sqlite3.Connection) -> None:
        """Give back a connection taken with :meth:`checkout`."""
        with self._lock:
            self._idle.append(connection)

    def first(self, prepared: Prepared, params: dict[str, Any]) -> tuple[Any, ...] | None:
        """The first row of ``prepared`` with ``params`` (converted), read without waiting.

        Raises:
            ReadWouldWait: No free connection, or the database is locked.
        """
        connection = self.checkout()
        try:
            cursor = connection.execute(prepared.sql, [params[name] for name in prepared.names])
            try:
                raw: tuple[Any, ...] | None = cursor.fetchone()
            finally:
                cursor.close()  # NOTE: resets the statement: its read transaction ends here
        except sqlite3.OperationalError as exc:
            code = getattr(exc, "sqlite_errorcode", None)
            if code is not None and code & 0xFF in _BUSY_CODES:
                raise ReadWouldWait("the database is locked") from exc
            raise
        finally:
            self.checkin(connection)
        return None if raw is None else prepared.row(raw)

    def dispose(self) -> None:
        """Close the idle connections (those in use close when given back and dropped)."""
        with self._lock:
            idle, self._idle = self._idle, []
            self._opened -= len(idle)
        for connection in idle:
            connection.close()
