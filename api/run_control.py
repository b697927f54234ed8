"""GC and retention runs against their Temporal workflows: reconcile on read, cancel.

``TemporalRuns`` is the :class:`core.services.run_reconcile.WorkflowRuns` port over
``temporalio``; :class:`RunControl` settles pending rows from what Temporal says of their
workflows (``core.services.run_reconcile``) and cancels runs. Temporal being away never
fails a read: the rows are then returned as they are.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Final, cast

import anyio.to_thread
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from adapters.temporal_client import connect_temporal
from core.errors import ConflictError
from core.services.run_reconcile import (
    CANCELLED,
    Settlement,
    WorkflowRuns,
    WorkflowState,
    decide,
    is_pending,
    settle,
)

if TYPE_CHECKING:
    from api.context import Registry
    from core.control_records import GcRunRecord
    from core.ports import Clock, Metadata
    from core.settings import TemporalSettings

logger = logging.getLogger(__name__)

#: Bound on one connect or describe call.
CALL_TIMEOUT: Final = 3.0
#: After a failed call, Temporal is not asked again for this long (reads stay fast).
RETRY_AFTER: Final = 5.0
#: Key of the registry's ``extras`` holding its :class:`RunControl`.
EXTRAS_KEY: Final = "run_control"

_STATES: Final = {
    WorkflowExecutionStatus.RUNNING: WorkflowState.RUNNING,
    WorkflowExecutionStatus.COMPLETED: WorkflowState.COMPLETED,
    WorkflowExecutionStatus.FAILED: WorkflowState.FAILED,
    WorkflowExecutionStatus.CANCELED: WorkflowState.CANCELLED,
    WorkflowExecutionStatus.TERMINATED: WorkflowState.TERMINATED,
    WorkflowExecutionStatus.TIMED_OUT: WorkflowState.TIMED_OUT,
    WorkflowExecutionStatus.CONTINUED_AS_NEW: WorkflowState.CONTINUED,
}
_GONE: Final = frozenset({RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION})


class TemporalRuns:
    """:class:`WorkflowRuns` over a lazily connected client (dropped after a failure)."""

    def __init__(self, settings: TemporalSettings) -> None:
        self._settings = settings
        self._client: Client | None = None
        self._quiet_until = 0.0

    async def _connect(self) -> Client:
        if time.monotonic() < self._quiet_until:
            raise ConnectionError("Temporal was unreachable moments ago")
        if self._client is None:
            self._client = await connect_temporal(self._settings)
        return self._client

    def _failed(self) -> None:
        self._client = None
        self._quiet_until = time.monotonic() + RETRY_AFTER

    async def state(self, workflow_id: str) -> WorkflowState:
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                client = await self._connect()
                described = await client.get_workflow_handle(workflow_id).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return WorkflowState.NOT_FOUND
            self._failed()
            raise
        except Exception:
            self._failed()
            raise
        if described.status is None:
            return WorkflowState.RUNNING
        return _STATES.get(described.status, WorkflowState.RUNNING)

    async def cancel(self, workflow_id: str, reason: str = "") -> bool:
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                client = await self._connect()
                await client.get_workflow_handle(workflow_id).cancel(reason=reason)
        except RPCError as exc:
            if exc.status in _GONE:
                return False
            self._failed()
            raise
        except Exception:
            self._failed()
            raise
        return True


class RunControl:
    """Reconcile run rows with their workflows, and cancel runs."""

    def __init__(self, metadata: Metadata, workflows: WorkflowRuns, clock: Clock) -> None:
        self._metadata = metadata
        self._workflows = workflows
        self._clock = clock

    async def reconciled(self, run: GcRunRecord) -> GcRunRecord:
        """The run, settled first if its workflow ended without recording it."""
        if not is_pending(run):
            return run
        try:
            state = await self._workflows.state(run.id)
        except Exception:  # noqa: BLE001 - Temporal away: the row stays as it is
            return run
        settlement = decide(run, state)
        if settlement is None:
            return run
        settled = await anyio.to_thread.run_sync(
            settle, self._metadata, run.id, settlement, self._clock.now()
        )
        return settled or run

    async def reconciled_all(self, runs: list[GcRunRecord]) -> list[GcRunRecord]:
        """:meth:`reconciled` of every run (Temporal is asked about pending ones only)."""
        return [await self.reconciled(run) for run in runs]

    async def cancel(self, run: GcRunRecord, by: str) -> GcRunRecord:
        """Cancel the run's workflow and mark the run ``cancelled``.

        A run whose workflow has not started yet (its request is still in the outbox) is
        marked too: when it starts, it finds its run finished and does nothing. When
        Temporal is away the run is still marked; its workflow, once reachable, does no
        further step.

        Raises:
            ConflictError: The run has already finished.
        """
        if not is_pending(run):
            raise ConflictError(f"run {run.id!r} has already finished ({run.state})")
        try:
            await self._workflows.cancel(run.id)
        except Exception as exc:  # noqa: BLE001 - marked anyway (see above)
            logger.warning("could not cancel the workflow of %s (%s)", run.id, exc)
        settlement = Settlement(CANCELLED, f"cancelled by {by}")
        settled = await anyio.to_thread.run_sync(
            settle, self._metadata, run.id, settlement, self._clock.now()
        )
        outcome = settled.state if settled is not None else "gone"
        if settled is None or outcome != CANCELLED:
            raise ConflictError(f"run {run.id!r} has already finished ({outcome})")
        return settled


def run_control_of(registry: Registry) -> RunControl:
    """The registry's :class:`RunControl` (built by the composition root)."""
    control = registry.extras.get(EXTRAS_KEY)
    if control is None:
        raise RuntimeError("the registry was built without run control")
    return cast("RunControl", control)
