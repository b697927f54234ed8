"""A stop's statements on an execution table (replication and preheat executions).

Both tables have ``id``, ``status`` and ``reason`` columns and the same ``running``,
``stopping`` and ``stopped`` values (``core.execution_stop``). What closing a stopped
execution does to its tasks stays with each store.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Connection, Table, select, update

from core.execution_stop import STOPPING
from storage.db.engine import Engines

#: The status of an execution a stop may be asked of.
RUNNING = "running"


def lock_active(
    connection: Connection, table: Table, execution_id: str, active: Collection[str]
) -> Any | None:
    """The execution's status and reason, row locked, if its status is in ``active``."""
    row = connection.execute(
        select(table.c.status, table.c.reason).where(table.c.id == execution_id).with_for_update()
    ).first()
    return row if row is not None and row.status in active else None


def request_stop(
    engines: Engines, table: Table, execution_id: str, reason: str, reason_max: int
) -> bool:
    """Mark a ``running`` execution ``stopping`` with ``reason`` (one transaction).

    Returns:
        Whether it was running.
    """
    with engines.writing() as connection, connection.begin():
        changed = connection.execute(
            update(table)
            .where(table.c.id == execution_id, table.c.status == RUNNING)
            .values(status=STOPPING, reason=reason[:reason_max])
        )
    return bool(changed.rowcount)
