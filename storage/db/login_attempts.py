"""The SQL implementation of ``core.login_limit.LoginAttemptStore``.

A failure is counted in one write transaction that locks the key's row (``SELECT ...
FOR UPDATE`` on PostgreSQL, the database write lock on SQLite), so failures from any
number of processes add up and none is lost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Table, and_, delete, or_, select
from sqlalchemy import update as sql_update
from sqlalchemy.dialects import postgresql, sqlite

from core.login_limit import LoginAttempts
from storage.db.engine import Engines
from storage.db.login_tables import LoginAttempt

_TABLE: Table = LoginAttempt.__table__  # type: ignore[attr-defined]


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _attempts(row: Any) -> LoginAttempts:
    start = _aware(row.window_start)
    assert start is not None  # noqa: S101 - the column is NOT NULL
    return LoginAttempts(row.failures, start, _aware(row.locked_until))


class SqlLoginAttemptStore:
    def __init__(self, engines: Engines) -> None:
        self._engines = engines

    def attempts(self, keys: Sequence[str]) -> dict[str, LoginAttempts]:
        query = select(_TABLE).where(_TABLE.c.key.in_(list(keys)), _TABLE.c.failures > 0)
        with self._engines.read.connect() as c:
            return {row.key: _attempts(row) for row in c.execute(query)}

    def record_failure(
        self,
        key: str,
        update: Callable[[LoginAttempts | None], LoginAttempts],
        stale_before: datetime,
    ) -> LoginAttempts:
        with self._engines.writing() as c, c.begin():
            _prune(c, stale_before)
            _insert_placeholder(c, key, stale_before)
            query = select(_TABLE).where(_TABLE.c.key == key).with_for_update()
            row = c.execute(query).one()
            counted = update(_attempts(row) if row.failures > 0 else None)
            c.execute(
                sql_update(_TABLE)
                .where(_TABLE.c.key == key)
                .values(
                    failures=counted.failures,
                    window_start=counted.window_start,
                    locked_until=counted.locked_until,
                )
            )
            return counted

    def clear(self, keys: Sequence[str]) -> None:
        with self._engines.writing() as c, c.begin():
            c.execute(delete(_TABLE).where(_TABLE.c.key.in_(list(keys))))


def _insert_placeholder(c: Connection, key: str, now: datetime) -> None:
    """Make sure the key's row exists (zero failures), so it can be locked."""
    dialect = postgresql if c.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(_TABLE).values(key=key, failures=0, window_start=now)
    c.execute(statement.on_conflict_do_nothing(index_elements=[_TABLE.c.key]))


def _prune(c: Connection, stale_before: datetime) -> None:
    """Drop counts whose window is over and that hold no lock any more."""
    c.execute(
        delete(_TABLE).where(
            and_(
                _TABLE.c.window_start < stale_before,
                or_(_TABLE.c.locked_until.is_(None), _TABLE.c.locked_until < stale_before),
            )
        )
    )
