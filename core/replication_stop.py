"""Stopping a replication execution (Harbor's "stop"): cancel its workflow, settle as ``stopped``.

A stop asks Temporal to cancel the execution's workflow and marks the execution
``stopping``. The workflow then cancels its child runs; each copy in flight stops at its
next heartbeat (recording what it had sent), the tasks that never ran are marked
``stopped``, and the execution is closed as ``stopped`` (``workflows.replication``).
Copies that completed before the stop reached them keep their result, so the tasks say
exactly which artifacts were done.

A stop is idempotent: stopping a ``stopping`` execution changes nothing; stopping one
that has finished is a conflict. An execution whose workflow Temporal no longer knows
(it never started, or it was terminated) is closed as ``stopped`` here, since nothing
else would close it. When Temporal cannot be reached nothing changes and the caller is
told so: the run keeps going, and marking it stopped would be untrue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from core.errors import ConflictError, NotFoundError, OCIErrorCode, RegistryError
from core.replication import ACTIVE_STATUSES, Execution, ExecutionStatus, ReplicationStore


class WorkflowCancel(Protocol):
    """Temporal's side of a stop (``api.run_control.TemporalRuns``)."""

    async def cancel(self, workflow_id: str, reason: str = "") -> bool:
        """Ask for the workflow's cancellation; ``False`` when it is not running.

        ``reason`` travels with the request (the workflow records it).

        Raises:
            Exception: Temporal is unreachable.
        """
        ...


class ExecutionStopper:
    """Stops executions (the store is called off the event loop)."""

    def __init__(
        self,
        store: ReplicationStore,
        workflows: WorkflowCancel,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._workflows = workflows
        self._now = clock

    async def stop(self, execution_id: str, by: str) -> Execution:
        """Stop a running execution; the execution as it stands (``stopping`` or ``stopped``).

        Raises:
            NotFoundError: No such execution.
            ConflictError: It has finished already.
            RegistryError: ``UNAVAILABLE``: Temporal could not be reached (nothing changed).
        """
        execution = await asyncio.to_thread(self._check, execution_id)
        if execution.status is ExecutionStatus.STOPPING:
            return execution
        reason = f"stopped by {by}"
        try:
            reached = await self._workflows.cancel(execution_id, reason)
        except Exception as exc:
            raise RegistryError(
                OCIErrorCode.UNAVAILABLE,
                f"Temporal could not be reached to stop {execution_id!r}; "
                "the execution keeps running, try again",
            ) from exc
        return await asyncio.to_thread(self._record, execution_id, reached, reason)

    def _current(self, execution_id: str) -> Execution:
        found = self._store.execution(execution_id)
        if found is None:
            raise NotFoundError(f"replication execution {execution_id!r} not found")
        return found

    def _check(self, execution_id: str) -> Execution:
        execution = self._current(execution_id)
        if execution.status not in ACTIVE_STATUSES:
            raise ConflictError(
                f"replication execution {execution_id!r} has already finished "
                f"({execution.status}); only a running execution can be stopped"
            )
        return execution

    def _record(self, execution_id: str, reached: bool, reason: str) -> Execution:
        """``stopping`` (its workflow settles it), or closed ``stopped`` when none runs."""
        if reached:
            self._store.request_stop(execution_id, reason)
        else:
            self._store.stop_execution(execution_id, reason, self._now())
        after = self._current(execution_id)
        if after.status not in (*ACTIVE_STATUSES, ExecutionStatus.STOPPED):
            raise ConflictError(
                f"replication execution {execution_id!r} has already finished ({after.status})"
            )
        return after
