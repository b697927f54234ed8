"""What every repository shares: the unit of work's connection and row mapping by name."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from operator import itemgetter
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Select, Table
from sqlalchemy.dialects import postgresql, sqlite

_R = TypeVar("_R")


def table_of(model: Any) -> Table:
    """The Core table of a SQLModel table class."""
    table: Table = model.__table__
    return table


def now() -> datetime:
    """The local time, aware (what ``created_at`` columns store)."""
    return datetime.now().astimezone()


def dialect_inserts(table: Table) -> dict[str, Any]:
    """``INSERT`` of ``table`` per dialect (for ``ON CONFLICT`` clauses)."""
    return {"postgresql": postgresql.insert(table), "sqlite": sqlite.insert(table)}


def insert_ignore(table: Table) -> dict[str, Any]:
    """``INSERT ... ON CONFLICT DO NOTHING`` per dialect, values given at execution."""
    return {
        dialect: statement.on_conflict_do_nothing()
        for dialect, statement in dialect_inserts(table).items()
    }


class RecordMap(Generic[_R]):
    """Builds records of a dataclass from the rows of one statement, by column name.

    Every field of the record is matched, once, to the statement's column labelled
    ``prefix + field`` (a missing column fails at import, not at run time); a row is
    then turned into a record with one C-level item fetch, as cheap as unpacking it
    by position. Works on SQLAlchemy rows and on raw ``sqlite3`` rows of the same
    statement (``storage.db.nowait``).
    """

    __slots__ = ("_fields", "_get", "_record", "first_index")

    def __init__(self, record: type[_R], statement: Select[Any], prefix: str = "") -> None:
        labels = [column.key for column in statement.selected_columns]
        self._fields = [field.name for field in dataclasses.fields(record)]  # type: ignore[arg-type]
        indices = [labels.index(prefix + name) for name in self._fields]
        self._record: Callable[..., _R] = record
        self._get = itemgetter(*indices)
        #: The index of the record's first field (to tell an outer join's missing row).
        self.first_index = indices[0]

    def __call__(self, row: Any) -> _R:
        values = self._get(row)
        if len(self._fields) == 1:
            return self._record(values)
        return self._record(*values)


class SqlRepository:
    """A repository on the connection of one unit of work (never commits by itself)."""

    __slots__ = ("_c", "_dialect")

    def __init__(self, connection: Connection) -> None:
        self._c = connection
        self._dialect: str = connection.dialect.name

    def _insert(self, table: Table) -> Any:
        if self._dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    def _locking(self, query: Any, skip_locked: bool = False) -> Any:
        """``query`` taking row locks on PostgreSQL (SQLite's write lock covers writers)."""
        if self._dialect == "postgresql":
            return query.with_for_update(skip_locked=skip_locked)
        return query
