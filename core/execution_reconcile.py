"""Replication and preheat executions kept in step with their Temporal workflows.

An execution's row is closed by its own workflow (its last activity). A workflow that
ends any other way -- terminated or cancelled from the Temporal UI or CLI, failed, timed
out, or lost with the Temporal server's database -- would leave its row ``running`` for
ever. Whoever reads executions (the management API's lists and single reads, and so the
CLI) hands the open ones to :class:`ExecutionReconciler`, which asks Temporal about their
workflows and closes those that have ended, with the reason (:func:`ending`).

Consistency guarantees:
- A row is closed only by its store's ``close_abandoned``, in one transaction that finds
  it still open: an execution whose workflow recorded its own end in the meantime keeps
  what it recorded.
- Only open rows cost a call to Temporal. When Temporal cannot be reached the rows are
  returned as they are, and the first failed call ends the pass (a read is never held up
  by one timeout per row).
- A workflow Temporal does not know is taken as lost only once its execution is older
  than :data:`LOST_AFTER`: an execution is written just before its workflow is started
  (a manual run, an event batch's runs), and is not closed in that window.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Generic, Protocol, TypeVar

from core.services.run_reconcile import WorkflowState

#: Age after which an open execution whose workflow Temporal does not know is lost.
LOST_AFTER: Final = timedelta(minutes=10)

_ENDED: Final = {
    WorkflowState.CANCELLED: "the execution's workflow was cancelled in Temporal",
    WorkflowState.COMPLETED: "the execution's workflow completed without closing it",
    WorkflowState.FAILED: "the execution's workflow failed",
    WorkflowState.TERMINATED: "the execution's workflow was terminated",
    WorkflowState.TIMED_OUT: "the execution's workflow timed out",
}
_LOST: Final = "the execution's workflow is not known to Temporal (lost)"


@dataclass(frozen=True, slots=True)
class Ending:
    """Why an open execution is closed.

    Attributes:
        cancelled: Its workflow was cancelled: a stop by other means (a replication
            execution then closes as ``stopped``, its tasks that never ran too).
    """

    reason: str
    cancelled: bool = False


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def ending(state: WorkflowState, started_at: datetime, now: datetime) -> Ending | None:
    """How an open execution ends given its workflow's state (``None``: leave it open)."""
    if state is WorkflowState.NOT_FOUND:
        return Ending(_LOST) if _utc(now) - _utc(started_at) > LOST_AFTER else None
    reason = _ENDED.get(state)
    if reason is None:
        return None
    return Ending(reason, cancelled=state is WorkflowState.CANCELLED)


class WorkflowStates(Protocol):
    """Temporal's side: the state of the newest run of a workflow (by its id)."""

    async def state(self, workflow_id: str) -> WorkflowState:
        """The workflow's state.

        Raises:
            Exception: Temporal is unreachable.
        """
        ...


class ExecutionRow(Protocol):
    """What the reconciler reads of an execution (its id is its workflow's id)."""

    @property
    def id(self) -> str: ...

    @property
    def started_at(self) -> datetime: ...


E = TypeVar("E", bound=ExecutionRow)


class ExecutionRows(Protocol[E]):
    """The store's side, for one kind of execution."""

    def is_open(self, execution: E) -> bool:
        """Whether the execution's workflow may still close it."""
        ...

    def close_abandoned(self, execution_id: str, ending: Ending, now: datetime) -> bool:
        """Close the execution if it is still open, in one transaction; whether it was."""
        ...

    def execution(self, execution_id: str) -> E | None: ...


class ExecutionReconciler(Generic[E]):
    """Closes the open executions of a read whose workflows have ended."""

    def __init__(
        self, rows: ExecutionRows[E], workflows: WorkflowStates, clock: Callable[[], datetime]
    ) -> None:
        self._rows = rows
        self._workflows = workflows
        self._now = clock

    async def reconciled(self, executions: Sequence[E]) -> list[E]:
        """``executions`` in order, each closed first if its workflow has ended."""
        out: list[E] = []
        reachable = True
        for execution in executions:
            current = execution
            if reachable and self._rows.is_open(execution):
                try:
                    state = await self._workflows.state(execution.id)
                except Exception:  # noqa: BLE001 - Temporal away: rows stay as they are
                    reachable = False
                else:
                    found = ending(state, execution.started_at, self._now())
                    if found is not None:
                        current = await asyncio.to_thread(self._close, execution, found)
            out.append(current)
        return out

    async def one(self, execution: E) -> E:
        """:meth:`reconciled` of a single execution."""
        return (await self.reconciled([execution]))[0]

    def _close(self, execution: E, found: Ending) -> E:
        self._rows.close_abandoned(execution.id, found, self._now())
        return self._rows.execution(execution.id) or execution
