"""PostgreSQL connections: pings only for idle ones, reads without a transaction block.

The pool (``storage.db.engine``) pings only connections that sat idle.

A ping per checkout would cost a round trip per transaction. Instead a connection back
in the pool for a moment is handed out as it is, an idle one is pinged and replaced when
the server no longer knows it. The server ending a session (what a restart does to every
session) stands in for the restart here: ``pg_terminate_backend`` of the pooled
connection's backend.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import OperationalError

from core.settings import Settings
from storage.db import engine as engine_module
from storage.db.engine import Engines, create_engines
from storage.db.metadata import SqlMetadata
from tests.services.postgres import Postgres

pytestmark = pytest.mark.integration

#: The idle time after which the test's pool pings (shorter than the product's, to be quick).
IDLE = 0.3


@pytest.fixture
def engine(postgres: Postgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setattr(engine_module, "PING_IDLE_SECONDS", IDLE)
    url = postgres.create_database(f"pool_{secrets.token_hex(4)}")
    built = create_engines(Settings(data_dir=tmp_path, database_url=url)).write
    yield built
    built.dispose()


def _backend(engine: Engine) -> int:
    with engine.connect() as connection:
        pid: int = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    return pid


def _end_session(postgres: Postgres, pid: int) -> None:
    with postgres.connect() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    time.sleep(0.1)  # the backend exits asynchronously


def test_an_idle_connection_the_server_ended_is_replaced_before_use(
    engine: Engine, postgres: Postgres
) -> None:
    first = _backend(engine)
    _end_session(postgres, first)
    time.sleep(IDLE * 2)
    second = _backend(engine)
    assert second != first


def test_a_busy_pool_is_not_pinged_and_recovers_after_one_failure(
    engine: Engine, postgres: Postgres
) -> None:
    first = _backend(engine)
    _end_session(postgres, first)
    # Back in the pool a moment ago: handed out without a ping, so its first statement
    # meets the ended session (a request would answer 503 here).
    with pytest.raises(OperationalError), engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    assert _backend(engine) != first


def test_only_connections_that_sat_idle_are_pinged(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings: list[DBAPIConnection] = []
    ping = engine.dialect.do_ping

    def counted(dbapi_connection: DBAPIConnection) -> bool:
        pings.append(dbapi_connection)
        return ping(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    for _ in range(20):
        _backend(engine)
    assert pings == []
    time.sleep(IDLE * 2)
    _backend(engine)
    _backend(engine)
    assert len(pings) == 1


def test_reads_run_without_a_transaction_block(engine: Engine) -> None:
    """Each statement of a read is its own transaction (no BEGIN/COMMIT round trips).

    Under READ COMMITTED a transaction gives its statements no common snapshot anyway;
    what changes is that ``now()`` (the transaction's start) is each statement's own.
    """
    metadata = SqlMetadata(Engines(read=engine, write=engine))
    with metadata.read() as session:
        session._c.execute(text("SELECT pg_sleep(0.05)"))
        same = session._c.execute(text("SELECT now() = statement_timestamp()"))
        assert same.scalar_one() is True
    with metadata.write() as session:
        session._c.execute(text("SELECT pg_sleep(0.05)"))
        same = session._c.execute(text("SELECT now() = statement_timestamp()"))
        assert same.scalar_one() is False
