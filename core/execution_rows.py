"""Replication and preheat executions as :class:`core.execution_reconcile.ExecutionRows`.

Which executions are open, and how an abandoned one is closed, is each store's
``close_abandoned`` (one transaction that finds the row still open); these adapters only
name the open statuses and point the reconciler at the store.
"""

from __future__ import annotations

from datetime import datetime

from core import preheat, replication
from core.execution_reconcile import Ending


class ReplicationExecutionRows:
    """Replication executions: open while ``running`` or ``stopping``."""

    def __init__(self, store: replication.ReplicationStore) -> None:
        self._store = store

    def is_open(self, execution: replication.Execution) -> bool:
        return execution.status in replication.ACTIVE_STATUSES

    def close_abandoned(self, execution_id: str, ending: Ending, now: datetime) -> bool:
        return self._store.close_abandoned(execution_id, ending, now)

    def execution(self, execution_id: str) -> replication.Execution | None:
        return self._store.execution(execution_id)


class PreheatExecutionRows:
    """Preheat executions: open while ``running``."""

    def __init__(self, store: preheat.PreheatStore) -> None:
        self._store = store

    def is_open(self, execution: preheat.Execution) -> bool:
        return execution.status is preheat.ExecutionStatus.RUNNING

    def close_abandoned(self, execution_id: str, ending: Ending, now: datetime) -> bool:
        return self._store.close_abandoned(execution_id, ending, now)

    def execution(self, execution_id: str) -> preheat.Execution | None:
        return self._store.execution(execution_id)
