"""Asks Temporal whether a batch's run closed (``core.event_batches.BatchRuns``)."""

from __future__ import annotations

import asyncio

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from adapters.temporal_client import connect_temporal
from core.settings import TemporalSettings

#: Bound on one connect or describe call.
CALL_TIMEOUT = 5.0


class TemporalRuns:
    """Describes runs by id, connecting lazily; the client is dropped after a failure."""

    def __init__(self, settings: TemporalSettings) -> None:
        self._settings = settings
        self._client: Client | None = None

    async def closed(self, workflow_id: str) -> str | None:
        """How the run closed (its status name), ``None`` while it runs.

        Raises:
            LookupError: Temporal knows no run of that id.
        """
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                if self._client is None:
                    self._client = await connect_temporal(self._settings)
                description = await self._client.get_workflow_handle(workflow_id).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise LookupError(workflow_id) from exc
            self._client = None
            raise
        except Exception:
            self._client = None
            raise
        status = description.status
        if status is None or status == WorkflowExecutionStatus.RUNNING:
            return None
        return status.name
