"""Rows of one table by id: the add, read, save and delete every policy store needs.

Each call is one short transaction on the metadata database (writes through
``Engines.writing``, which takes the SQLite write lock). A write that breaks a unique
constraint (a name taken) changes nothing and answers ``None`` or ``False``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Row, Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from storage.db.engine import Engines


class TableRows:
    """The rows of ``table`` (its primary key ``id``)."""

    def __init__(self, engines: Engines, table: Table) -> None:
        self._engines = engines
        self._table = table

    def add(self, values: dict[str, Any]) -> int | None:
        """Insert a row; its new id, or ``None`` when a unique constraint refuses it."""
        try:
            with self._engines.writing() as connection, connection.begin():
                result = connection.execute(insert(self._table).values(**values))
                return int(result.inserted_primary_key[0])  # type: ignore[index]
        except IntegrityError:
            return None

    def first(self, where: ColumnElement[bool]) -> Row[Any] | None:
        """The first row matching ``where`` (``None``: none)."""
        with self._engines.read.connect() as connection:
            return connection.execute(select(self._table).where(where)).first()

    def by_id(self, row_id: int) -> Row[Any] | None:
        return self.first(self._table.c.id == row_id)

    def all(self, where: ColumnElement[bool] | None = None) -> Sequence[Row[Any]]:
        """Every row (matching ``where``), in id order."""
        query = select(self._table).order_by(self._table.c.id)
        if where is not None:
            query = query.where(where)
        with self._engines.read.connect() as connection:
            return connection.execute(query).all()

    def save(self, row_id: int, values: dict[str, Any]) -> bool:
        """Update the row's columns in ``values`` (``created_at`` is kept as stored).

        ``False`` when the row is gone or a unique constraint refuses the change.
        """
        changes = {k: v for k, v in values.items() if k != "created_at"}
        try:
            with self._engines.writing() as connection, connection.begin():
                result = connection.execute(
                    update(self._table).where(self._table.c.id == row_id).values(**changes)
                )
        except IntegrityError:
            return False
        return bool(result.rowcount)

    def delete(self, row_id: int) -> bool:
        """Delete the row; ``False`` when it was already gone."""
        with self._engines.writing() as connection, connection.begin():
            result = connection.execute(delete(self._table).where(self._table.c.id == row_id))
            return bool(result.rowcount)
