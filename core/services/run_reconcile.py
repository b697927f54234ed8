"""Run rows (GC and retention) kept in step with their Temporal workflows.

A run's row is written by its workflow's activities, so a workflow that ends without
them (terminated, timed out, cancelled, lost with the Temporal server's database) would
leave its row ``queued`` or ``running`` forever. Whoever reads the row (the management
API, the worker's periodic pass) asks Temporal for the workflow's state and settles the
row with a reason (:func:`decide`, :func:`settle`). ``cancel`` marks a run the operator
cancelled.

Consistency guarantees:
- A row is settled only in a transaction holding its lock and only while it is still
  pending: a run that recorded its own end in between keeps what it recorded.
- A settled run is finished (``run_progress.FINISHED``): late activities of its
  workflow neither change its state nor add to its report.
- A ``queued`` run whose workflow Temporal does not know is left alone: its outbox
  event may not have been dispatched yet (it is dispatched once Temporal is back).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final, Protocol

from core.control_records import GcRunRecord
from core.ports import Metadata
from core.services import gc_progress
from core.services.run_progress import FINISHED, report_of

#: States of a run that its workflow may still change.
PENDING: Final = frozenset({"queued", "running"})
CANCELLED: Final = "cancelled"
FAILED: Final = "failed"


class WorkflowState(StrEnum):
    """What Temporal says of a run's workflow."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TERMINATED = "terminated"
    TIMED_OUT = "timed out"
    CONTINUED = "continued as new"
    NOT_FOUND = "not found"


class WorkflowRuns(Protocol):
    """Temporal's side: the state of a run's workflow, and its cancellation."""

    async def state(self, workflow_id: str) -> WorkflowState:
        """The workflow's state.

        Raises:
            Exception: Temporal is unreachable (the row is then left as it is).
        """
        ...

    async def cancel(self, workflow_id: str, reason: str = "") -> bool:
        """Request cancellation of the open workflow; False when none is open.

        ``reason`` travels with the request (``workflow.cancellation_reason()``).

        Raises:
            Exception: Temporal is unreachable.
        """
        ...


@dataclass(frozen=True, slots=True)
class Settlement:
    """The final state a pending run gets, and why."""

    state: str
    reason: str


#: Settlements by the state of a closed workflow (a run not found is decided apart).
_CLOSED: Final = {
    WorkflowState.CANCELLED: Settlement(CANCELLED, "the run's workflow was cancelled"),
    WorkflowState.COMPLETED: Settlement(
        FAILED, "the run's workflow completed without recording the run"
    ),
    WorkflowState.FAILED: Settlement(FAILED, "the run's workflow failed"),
    WorkflowState.TERMINATED: Settlement(FAILED, "the run's workflow was terminated"),
    WorkflowState.TIMED_OUT: Settlement(FAILED, "the run's workflow timed out"),
}
_LOST: Final = Settlement(FAILED, "the run's workflow is not known to Temporal (lost)")


def decide(run: GcRunRecord, workflow: WorkflowState) -> Settlement | None:
    """How a pending run ends given its workflow's state (``None``: leave it)."""
    if run.state not in PENDING:
        return None
    if workflow is WorkflowState.NOT_FOUND:
        return _LOST if run.state == "running" else None
    return _CLOSED.get(workflow)


def settle(
    metadata: Metadata, run_id: str, settlement: Settlement, now: datetime
) -> GcRunRecord | None:
    """Finish the run with ``settlement`` if it is still pending; return the row as it is.

    The report keeps what the run recorded (a GC run's steps summed up) and gains
    ``reason``.
    """
    with metadata.write() as session:
        current = session.runs.get_for_update(run_id)
        if current is None or current.state not in PENDING:
            return current
        report = (gc_progress.final_report(current) if current.kind == "gc" else None) or {
            key: value for key, value in report_of(current).items() if key != "steps"
        }
        report["reason"] = settlement.reason
        text = json.dumps(report)
        session.runs.finish(run_id, settlement.state, text, now)
        session.commit()
    return dataclasses.replace(current, state=settlement.state, report=text, finished_at=now)


def is_pending(run: GcRunRecord) -> bool:
    """Whether the run has not finished (its workflow may still record it)."""
    return run.state not in FINISHED
