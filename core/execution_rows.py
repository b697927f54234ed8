"""Replication and preheat executions as the reconciler and the stopper see them.

:class:`core.execution_reconcile.ExecutionRows` and :class:`core.execution_stop.StopRows`
over each kind's store. Which executions are open, how an abandoned one is closed and
how a stop is recorded is each store's (one transaction that finds the row still open);
these adapters only name the open statuses and point the callers at the store.
"""

from __future__ import annotations

from datetime import datetime

from core import preheat, replication
from core.execution_reconcile import Ending


class ReplicationExecutionRows:
    """Replication executions: open while ``running`` or ``stopping``."""

    noun = "replication execution"

    def __init__(self, store: replication.ReplicationStore) -> None:
        self._store = store

    def is_open(self, execution: replication.Execution) -> bool:
        return execution.status in replication.ACTIVE_STATUSES

    def close_abandoned(self, execution_id: str, ending: Ending, now: datetime) -> bool:
        return self._store.close_abandoned(execution_id, ending, now)

    def execution(self, execution_id: str) -> replication.Execution | None:
        return self._store.execution(execution_id)

    def request_stop(self, execution_id: str, reason: str) -> bool:
        return self._store.request_stop(execution_id, reason)

    def stop_execution(
        self, execution_id: str, reason: str | None, now: datetime
    ) -> replication.Execution | None:
        return self._store.stop_execution(execution_id, reason, now)


class PreheatExecutionRows:
    """Preheat executions: open while ``running`` or ``stopping``."""

    noun = "preheat execution"

    def __init__(self, store: preheat.PreheatStore) -> None:
        self._store = store

    def is_open(self, execution: preheat.Execution) -> bool:
        return execution.status in preheat.ACTIVE_STATUSES

    def close_abandoned(self, execution_id: str, ending: Ending, now: datetime) -> bool:
        return self._store.close_abandoned(execution_id, ending, now)

    def execution(self, execution_id: str) -> preheat.Execution | None:
        return self._store.execution(execution_id)

    def request_stop(self, execution_id: str, reason: str) -> bool:
        return self._store.request_stop(execution_id, reason)

    def stop_execution(
        self, execution_id: str, reason: str | None, now: datetime
    ) -> preheat.Execution | None:
        return self._store.stop_execution(execution_id, reason, now)
