"""Database engines for SQLite (embedded) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy
from sqlalchemy import Connection, Engine, event

from core.settings import Settings


@dataclass(frozen=True)
class Engines:
    """A reader and a writer engine (the same engine except on SQLite)."""

    read: Engine
    write: Engine

    def dispose(self) -> None:
        self.read.dispose()
        if self.write is not self.read:
            self.write.dispose()


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _begin_deferred(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN")


def _begin_immediate(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_engine(url: str, *, immediate: bool) -> Engine:
    engine = sqlalchemy.create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": 30},
        pool_size=8,
        max_overflow=24,
    )
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _begin_immediate if immediate else _begin_deferred)
    return engine


def create_engines(settings: Settings) -> Engines:
    """Build the engines for the configured database.

    SQLite runs in WAL mode with foreign keys on; write transactions start with
    ``BEGIN IMMEDIATE`` so concurrent writers queue on the busy timeout instead of
    failing on a lock upgrade, while readers never wait for writers.
    """
    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return Engines(
            read=_sqlite_engine(url, immediate=False), write=_sqlite_engine(url, immediate=True)
        )
    engine = sqlalchemy.create_engine(url, pool_size=16, max_overflow=16, pool_pre_ping=True)
    return Engines(read=engine, write=engine)


def create_db_engine(settings: Settings) -> Engine:
    """The writer engine (what migrations and background jobs use)."""
    return create_engines(settings).write
