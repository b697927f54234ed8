"""Statements run on the DBAPI cursor (``storage.db.direct``) behave as SQLAlchemy's own.

Each test runs on SQLite (a file, the product's engine) and on PostgreSQL (the session's
server): the rows, conversions, row counts and errors a caller sees must be those of
``Connection.execute`` with the same statement.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import (
    Engine,
    Integer,
    bindparam,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError, StatementError

from core.settings import Settings
from storage.db.direct import DirectStatement
from storage.db.engine import create_engines
from tests.integration.direct_tables import (
    ITEM,
    META,
    WITH_DEFAULT,
    database_url,
    engine_with_tables,
)
from tests.services.postgres import Postgres

pytestmark = pytest.mark.integration

_READ = select(literal("i").label("kind"), ITEM.c.name, ITEM.c.size, ITEM.c.seen_at).where(
    ITEM.c.size >= bindparam("least")
)
_UPDATE = update(ITEM).where(ITEM.c.size < bindparam("below")).values(size=bindparam("to"))
_INSERT = ITEM.insert()
_UPSERTS: dict[str, Any] = {
    "postgresql": postgresql.insert(ITEM),
    "sqlite": sqlite.insert(ITEM),
}


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    yield from engine_with_tables(tmp_path, database_url(request, "direct"))


def _seed(engine: Engine) -> datetime:
    seen = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)
    with engine.begin() as connection:
        for number in range(4):
            values = {"name": f"n{number}", "size": number * 10, "seen_at": seen}
            DirectStatement(_INSERT).rows(connection, values)
    return seen


def test_rows_and_conversions_are_those_of_sqlalchemy(engine: Engine) -> None:
    seen = _seed(engine)
    direct = DirectStatement(_READ)
    with engine.connect() as connection, connection.begin():
        expected = [tuple(row) for row in connection.execute(_READ, {"least": 10})]
        got = direct.rows(connection, {"least": 10})
    assert got == expected
    assert got == [("i", "n1", 10, seen), ("i", "n2", 20, seen), ("i", "n3", 30, seen)]
    # the column type's conversions ran: the timestamp comes back aware, in UTC
    assert all(row[3].utcoffset() == timedelta(0) for row in got)


def test_a_value_the_bind_conversion_refuses_fails_as_in_sqlalchemy(engine: Engine) -> None:
    naive = {"name": "x", "size": 1, "seen_at": datetime(2026, 12, 7)}  # noqa: DTZ001
    with (
        engine.connect() as connection,
        connection.begin(),
        pytest.raises(StatementError) as regular,
    ):
        connection.execute(_INSERT, naive)
    with (
        engine.connect() as connection,
        connection.begin(),
        pytest.raises(StatementError) as direct,
    ):
        DirectStatement(_INSERT).rows(connection, naive)
    assert type(direct.value.orig) is type(regular.value.orig)
    assert str(direct.value.orig) == str(regular.value.orig)


def test_writes_commit_with_the_transaction_and_roll_back_with_it(engine: Engine) -> None:
    seen = _seed(engine)
    upsert = _UPSERTS[engine.dialect.name]
    statement = DirectStatement(
        upsert.on_conflict_do_update(
            index_elements=[ITEM.c.name], set_={"size": upsert.excluded.size}
        )
    )
    later = seen.astimezone(timezone(timedelta(hours=2)))
    with engine.connect() as connection:
        transaction = connection.begin()
        statement.rows(connection, {"name": "n1", "size": 99, "seen_at": later})
        transaction.rollback()
        with connection.begin():
            statement.rows(connection, {"name": "n2", "size": 77, "seen_at": later})
            statement.rows(connection, {"name": "n9", "size": 5, "seen_at": later})
    with engine.connect() as connection:
        sizes = dict(connection.execute(select(ITEM.c.name, ITEM.c.size)).all())
    assert sizes == {"n0": 0, "n1": 10, "n2": 77, "n3": 30, "n9": 5}


def test_a_first_statement_begins_the_transaction_commit_ends(engine: Engine) -> None:
    seen = datetime(2026, 12, 7, 4, 0, tzinfo=UTC)
    with engine.connect() as connection:  # no begin(): the statement autobegins, as execute's
        DirectStatement(_INSERT).rows(connection, {"name": "a", "size": 1, "seen_at": seen})
        assert connection.in_transaction()
        connection.commit()
    with engine.connect() as connection:
        assert connection.execute(select(ITEM.c.name)).scalars().all() == ["a"]


def test_row_counts_are_the_rows_matched(engine: Engine) -> None:
    _seed(engine)
    with engine.begin() as connection:
        assert DirectStatement(_UPDATE).rowcount(connection, {"below": 25, "to": 1}) == 3
        assert DirectStatement(_UPDATE).rowcount(connection, {"below": 0, "to": 1}) == 0


def test_a_constraint_violation_is_sqlalchemys_integrity_error(engine: Engine) -> None:
    seen = _seed(engine)
    with engine.connect() as connection:
        with pytest.raises(IntegrityError), connection.begin():
            DirectStatement(_INSERT).rows(connection, {"name": "n1", "size": 1, "seen_at": seen})
        # the connection is usable again after the rollback, and nothing was stored
        with connection.begin():
            count = connection.execute(text("SELECT count(*) FROM direct_item")).scalar_one()
    assert count == 4


def test_statements_sqlalchemy_would_complete_are_refused(engine: Engine) -> None:
    with engine.connect() as connection, connection.begin():
        with pytest.raises(ValueError, match="defaults of: state"):
            DirectStatement(WITH_DEFAULT.insert()).rows(connection, {"id": 1})
        expanding = select(ITEM.c.id).where(ITEM.c.name.in_(bindparam("names", expanding=True)))
        with pytest.raises(ValueError, match="plain binds only"):
            DirectStatement(expanding).rows(connection, {"names": ["n1"]})
        with pytest.raises(ValueError, match="'least' not given"):
            DirectStatement(_READ).rows(connection, {})
        if engine.dialect.name == "postgresql":
            divided = select((literal(1) / bindparam("by", type_=Integer)).label("ratio"))
            with pytest.raises(ValueError, match="cannot convert column 'ratio'"):
                DirectStatement(divided).rows(connection, {"by": 2})


def test_a_session_the_server_ended_invalidates_the_pool(
    postgres: Postgres, tmp_path: Path
) -> None:
    url = postgres.create_database(f"direct_{secrets.token_hex(4)}")
    engine = create_engines(Settings(data_dir=tmp_path, database_url=url)).write
    try:
        META.create_all(engine)
        _seed(engine)
        direct = DirectStatement(_READ)
        with engine.connect() as connection:
            pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with postgres.connect() as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            time.sleep(0.1)  # the backend exits asynchronously
            with pytest.raises(OperationalError) as ended:
                direct.rows(connection, {"least": 0})
        assert ended.value.connection_invalidated
        # the next unit of work gets a new session, not the dead one
        with engine.connect() as connection, connection.begin():
            assert connection.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
            assert len(direct.rows(connection, {"least": 0})) == 4
    finally:
        engine.dispose()
