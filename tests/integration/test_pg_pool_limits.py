"""PostgreSQL pool sizes from ``MOORAGE_DATABASE__*`` hold on a real server.

What an operator sizing ``max_connections`` relies on: a process never holds more than
``pool_size + max_overflow`` pooled sessions plus ``async_read_connections`` for reads
awaited on its event loop; a checkout beyond them waits the pool's timeout and fails with
the error the API answers as 503, and works again once a connection is returned.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from core.database_settings import DatabaseSettings
from core.settings import Settings
from storage.db.direct import DirectStatement
from storage.db.engine import Engines, create_engines
from tests.services.postgres import Postgres

pytestmark = pytest.mark.integration

TIMEOUT = 0.3
#: The backend's process id after a pause (seconds): which session answered.
_BACKEND = DirectStatement(
    select(func.pg_backend_pid(), func.pg_sleep(bindparam("pause")).label("slept"))
)


@pytest.fixture
def database(postgres: Postgres) -> str:
    return f"pools_{secrets.token_hex(4)}"


@pytest.fixture
def engines(postgres: Postgres, database: str, tmp_path: Path) -> Iterator[Engines]:
    pools = DatabaseSettings(
        pool_size=1, max_overflow=1, pool_timeout_seconds=TIMEOUT, async_read_connections=2
    )
    url = postgres.create_database(database)
    built = create_engines(Settings(data_dir=tmp_path, database_url=url, database=pools))
    yield built
    built.write.dispose()


def _sessions(postgres: Postgres, database: str) -> int:
    with postgres.connect() as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,)
        ).fetchone()
    assert row is not None
    return int(str(row[0]))


def _settled(postgres: Postgres, database: str, expected: int) -> int:
    """The session count once it is ``expected`` (a closed session's backend exits a moment
    later), or whatever it is after two seconds."""
    deadline = time.monotonic() + 2.0
    while (count := _sessions(postgres, database)) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return count


def test_a_checkout_beyond_the_pool_waits_its_timeout_then_fails(
    engines: Engines, postgres: Postgres, database: str
) -> None:
    engine = engines.write
    with ExitStack() as held:
        held.enter_context(engine.connect())
        held.enter_context(engine.connect())
        assert _sessions(postgres, database) == 2
        began = time.monotonic()
        with pytest.raises(PoolTimeoutError), engine.connect():
            pass
        assert time.monotonic() - began >= TIMEOUT
        assert _sessions(postgres, database) == 2
    # Returned: the kept connection is handed out again, the overflow one was closed.
    with engine.connect():
        pass
    assert _settled(postgres, database, 1) == 1


def test_awaited_reads_share_at_most_their_connections(
    engines: Engines, postgres: Postgres, database: str
) -> None:
    reader = engines.async_read
    assert reader is not None

    async def reads() -> set[int]:
        try:
            rows = await asyncio.gather(*(reader.first(_BACKEND, {"pause": 0.2}) for _ in range(6)))
            return {int(str(row[0])) for row in rows if row is not None}
        finally:
            await reader.aclose()

    pids = asyncio.run(reads())
    assert len(pids) == 2
    assert _settled(postgres, database, 0) == 0
