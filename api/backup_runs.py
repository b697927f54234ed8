"""Backup operations as Temporal workflows, seen from the API: start one, read its outcome."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Final

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from adapters.temporal_client import connect_temporal
from core.errors import NotFoundError
from core.settings import TemporalSettings

#: Bound on one connect, start or describe call.
CALL_TIMEOUT: Final = 5.0
_STATES: Final = {
    WorkflowExecutionStatus.RUNNING: "running",
    WorkflowExecutionStatus.COMPLETED: "completed",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.CANCELED: "cancelled",
    WorkflowExecutionStatus.TERMINATED: "terminated",
    WorkflowExecutionStatus.TIMED_OUT: "timed_out",
}


@dataclass(frozen=True, slots=True)
class Operation:
    """A backup operation's workflow: its state, and its result or error once it ended."""

    id: str
    state: str
    result: Any = None
    error: str | None = None


def _cause(exc: BaseException) -> str:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return str(exc)


#: Workflow ids of backup operations (started here, or by the backup schedule).
PREFIXES: Final = ("backup-", "moorage-backup-run")


class TemporalUnavailableError(ConnectionError):
    """Temporal could not be reached: the operation was not started or read."""


class BackupRuns:
    """Starts backup workflows and reads their outcome (client connected on first use)."""

    def __init__(self, settings: TemporalSettings) -> None:
        self._settings = settings
        self._client: Client | None = None

    async def _connect(self) -> Client:
        if self._client is None:
            self._client = await connect_temporal(self._settings)
        return self._client

    async def start(self, workflow: str, arg: object, workflow_id: str) -> Operation:
        """Start ``workflow``; an id already used answers that operation's state."""
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                client = await self._connect()
                await client.start_workflow(
                    workflow,
                    arg,
                    id=workflow_id,
                    task_queue=self._settings.task_queue,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                )
        except Exception as exc:
            self._client = None
            raise TemporalUnavailableError(f"Temporal is unreachable: {exc}") from exc
        return Operation(workflow_id, "running")

    async def read(self, workflow_id: str) -> Operation:
        """The operation's state, with its result (completed) or error (failed)."""
        if not workflow_id.startswith(PREFIXES):
            raise NotFoundError(f"there is no backup operation {workflow_id!r}")
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                client = await self._connect()
                handle = client.get_workflow_handle(workflow_id)
                described = await handle.describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise NotFoundError(f"there is no backup operation {workflow_id!r}") from None
            self._client = None
            raise TemporalUnavailableError(f"Temporal is unreachable: {exc}") from exc
        except (OSError, RuntimeError, TimeoutError) as exc:
            self._client = None
            raise TemporalUnavailableError(f"Temporal is unreachable: {exc}") from exc
        state = _STATES.get(described.status or WorkflowExecutionStatus.RUNNING, "running")
        if state == "running":
            return Operation(workflow_id, state)
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                result = await handle.result()
        except WorkflowFailureError as exc:
            return Operation(workflow_id, state, error=_cause(exc))
        return Operation(workflow_id, state, result=result)
