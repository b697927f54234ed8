"""Reads awaited on the event loop (``storage.db.async_reads``) on a real PostgreSQL server.

What the pull's fast path relies on: the same rows and conversions as
``Connection.execute``; at most the pool's size of connections per event loop, with reads
beyond it waiting their turn; a session the server ended fails one read and the next one
connects afresh; a cancelled read does not hand its connection to the next; each loop has
connections of its own, and closing a loop's reads closes them.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import (
    Engine,
    Integer,
    bindparam,
    func,
    literal,
    literal_column,
    select,
    text,
)

from storage.db.async_reads import AsyncReader
from storage.db.direct import DirectStatement
from tests.integration.direct_tables import ITEM, engine_with_tables
from tests.services.postgres import Postgres

pytestmark = pytest.mark.integration

_QUERY = select(literal("i").label("kind"), ITEM.c.name, ITEM.c.size, ITEM.c.seen_at).where(
    ITEM.c.name == bindparam("name")
)
_READ = DirectStatement(_QUERY)
#: The backend's process id after a pause (seconds): which connection answered.
_BACKEND = DirectStatement(
    select(func.pg_backend_pid(), func.pg_sleep(bindparam("pause")).label("slept"))
)
_DIVIDE = DirectStatement(select(literal_column("1") / bindparam("by", type_=Integer)))


@pytest.fixture
def engine(postgres: Postgres, tmp_path: Path) -> Iterator[Engine]:
    yield from engine_with_tables(
        tmp_path, postgres.create_database(f"awaited_{secrets.token_hex(4)}")
    )


async def _pid(reader: AsyncReader, pause: float = 0.0) -> int:
    row = await reader.first(_BACKEND, {"pause": pause})
    assert row is not None
    return int(row[0])


def _backends(engine: Engine) -> set[int]:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT pid FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        return {int(row[0]) for row in rows}


def test_rows_and_conversions_are_those_of_connection_execute(engine: Engine) -> None:
    seen = datetime(2026, 12, 7, 8, 30, 15, 123456, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(ITEM.insert(), [{"name": "a", "size": 3, "seen_at": seen}])
        expected = connection.execute(_QUERY, {"name": "a"}).one()
    reader = AsyncReader(engine, 2)

    async def read() -> tuple[Any, Any]:
        try:
            return await reader.first(_READ, {"name": "a"}), await reader.first(
                _READ, {"name": "missing"}
            )
        finally:
            await reader.aclose()

    found, missing = asyncio.run(read())
    assert found == tuple(expected) == ("i", "a", 3, seen)
    assert found[3].tzinfo is not None  # the column type's conversion applied
    assert missing is None


def test_reads_beyond_the_pool_size_wait_for_a_connection(engine: Engine) -> None:
    reader = AsyncReader(engine, 3)

    async def read() -> list[int]:
        try:
            return await asyncio.gather(*(_pid(reader, 0.02) for _ in range(24)))
        finally:
            await reader.aclose()

    pids = asyncio.run(read())
    assert len(pids) == 24
    assert 1 <= len(set(pids)) <= 3


def test_a_session_the_server_ended_fails_one_read_then_the_next_connects(
    engine: Engine,
) -> None:
    reader = AsyncReader(engine, 2)

    async def scenario() -> tuple[int, int]:
        try:
            first = await _pid(reader)
            with engine.connect() as connection:
                connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
            with pytest.raises(psycopg.OperationalError):
                await _pid(reader)
            return first, await _pid(reader)
        finally:
            await reader.aclose()

    first, after = asyncio.run(scenario())
    assert after != first


def test_a_failed_statement_keeps_its_connection(engine: Engine) -> None:
    reader = AsyncReader(engine, 1)

    async def scenario() -> tuple[int, int]:
        try:
            before = await _pid(reader)
            with pytest.raises(psycopg.errors.DivisionByZero):
                await reader.first(_DIVIDE, {"by": 0})
            return before, await _pid(reader)
        finally:
            await reader.aclose()

    before, after = asyncio.run(scenario())
    assert after == before


def test_a_cancelled_read_gives_the_next_reads_a_new_connection(engine: Engine) -> None:
    reader = AsyncReader(engine, 1)

    async def scenario() -> tuple[int, list[int]]:
        try:
            before = await _pid(reader)
            slow = asyncio.create_task(_pid(reader, 30))
            waiting = [asyncio.create_task(_pid(reader)) for _ in range(3)]
            await asyncio.sleep(0.2)
            slow.cancel()
            with pytest.raises(asyncio.CancelledError):
                await slow
            return before, await asyncio.gather(*waiting)
        finally:
            await reader.aclose()

    before, after = asyncio.run(scenario())
    assert len(set(after)) == 1
    assert after[0] != before


def test_each_event_loop_has_its_own_connections_and_closing_ends_them(
    engine: Engine,
) -> None:
    reader = AsyncReader(engine, 2)

    async def open_and_leave() -> int:
        return await _pid(reader)

    async def open_and_close() -> int:
        pid = await _pid(reader)
        assert pid in _backends(engine)
        await reader.aclose()
        with pytest.raises(RuntimeError):
            await _pid(reader)
        return pid

    first_loop = asyncio.run(open_and_leave())
    second_loop = asyncio.run(open_and_close())
    assert second_loop != first_loop
    for _ in range(50):
        if second_loop not in _backends(engine):
            break
        asyncio.run(asyncio.sleep(0.1))
    assert second_loop not in _backends(engine)
