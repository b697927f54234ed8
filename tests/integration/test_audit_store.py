"""The SQL audit store's appends on SQLite (``executemany``) and PostgreSQL (``COPY``).

Both ways of inserting a batch must store exactly the events given, chained, in order,
and a batch the database refuses must leave nothing behind: no row, the head where it
was, the chain still verifying, and the next append going on from there.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import func, select

from core.audit import AuditEvent, AuditQuery
from core.settings import Settings
from storage.db.audit import EVENT, SqlAuditStore
from storage.db.engine import Engines, create_engines
from storage.db.migrate import upgrade
from tests.integration.direct_tables import database_url
from tests.services.postgres import Postgres

pytestmark = pytest.mark.integration

_START = datetime(2026, 12, 7, 8, 0, 0, 123456, tzinfo=UTC)


def _migrated(data_dir: Path, url: str | None) -> Iterator[Engines]:
    settings = Settings(data_dir=data_dir, database_url=url)
    upgrade(settings)
    built = create_engines(settings)
    yield built
    built.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engines(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engines]:
    yield from _migrated(tmp_path, database_url(request, "audit"))


@pytest.fixture
def pg_engines(postgres: Postgres, tmp_path: Path) -> Iterator[Engines]:
    """PostgreSQL only: SQLite does not enforce column lengths, so nothing refuses a row."""
    yield from _migrated(tmp_path, postgres.create_database(f"audit_{secrets.token_hex(4)}"))


def _event(number: int, request_id: str | None = None) -> AuditEvent:
    return AuditEvent(
        time=_START + timedelta(seconds=number),
        request_id=request_id or f"req-{number}",
        actor="robot$ci",
        actor_kind="robot",
        auth_method="token",
        action="pull",
        resource=f"team/app:v{number}",
        project=None if number % 3 == 0 else "team",
        result="success",
        status=200,
        client="127.0.0.1",
        user_agent='skopeo/1.18 "quoted"\ttab\\back',
    )


def _count(engines: Engines) -> int:
    with engines.read.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(EVENT)).scalar_one())


def test_batches_are_stored_exactly_and_chained(engines: Engines) -> None:
    store = SqlAuditStore(engines)
    batches = [[_event(n) for n in range(start, start + size)] for start, size in ((0, 1), (1, 40))]
    stored = [event for batch in batches for event in store.append(batch)]
    assert [s.id for s in stored] == list(range(1, 42))
    read = store.query(AuditQuery(limit=100))
    assert [r.event for r in read] == [event for batch in batches for event in batch]
    assert [(r.id, r.prev_hash, r.hash) for r in read] == [
        (s.id, s.prev_hash, s.hash) for s in stored
    ]
    report = store.verify()
    assert report.ok
    assert report.checked == len(stored)


def test_a_refused_batch_leaves_nothing_and_the_chain_goes_on(pg_engines: Engines) -> None:
    engines = pg_engines
    store = SqlAuditStore(engines)
    first = store.append([_event(0), _event(1)])
    too_long = _event(3, request_id="x" * 65)  # the column holds 64 characters
    with pytest.raises(sqlalchemy.exc.DBAPIError):
        store.append([_event(2), too_long])
    assert _count(engines) == len(first)
    after = store.append([_event(4)])
    assert after[0].id == first[-1].id + 1
    assert after[0].prev_hash == first[-1].hash
    assert store.verify().ok
