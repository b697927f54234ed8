"""A page of an execution's open tasks (replication and preheat task tables).

One read: the rows of ``execution_id`` in one of ``states`` with ids above ``after``, in
id order, at most ``limit`` (``core.task_pages``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, Table, select

from storage.db.engine import Engines


def open_task_rows(
    engines: Engines,
    table: Table,
    execution_id: str,
    after: int,
    limit: int,
    states: Sequence[str],
) -> Sequence[Row[Any]]:
    """The task rows of the page (columns ``execution_id``, ``id`` and ``status``)."""
    with engines.read.connect() as connection:
        return connection.execute(
            select(table)
            .where(
                table.c.execution_id == execution_id,
                table.c.id > after,
                table.c.status.in_(states),
            )
            .order_by(table.c.id)
            .limit(limit)
        ).all()
