"""How a pending GC or retention run ends given what Temporal says of its workflow."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.control_records import GcRunRecord
from core.services.run_reconcile import WorkflowState, decide


def _run(state: str) -> GcRunRecord:
    return GcRunRecord("gc-1", state, False, False, None, None, datetime.now(UTC), None)


@pytest.mark.parametrize("state", ["queued", "running"])
@pytest.mark.parametrize(
    ("workflow", "expected"),
    [
        (WorkflowState.TERMINATED, ("failed", "terminated")),
        (WorkflowState.TIMED_OUT, ("failed", "timed out")),
        (WorkflowState.FAILED, ("failed", "failed")),
        (WorkflowState.CANCELLED, ("cancelled", "cancelled")),
        (WorkflowState.COMPLETED, ("failed", "without recording")),
    ],
)
def test_a_closed_workflow_settles_its_pending_run(
    state: str, workflow: WorkflowState, expected: tuple[str, str]
) -> None:
    settlement = decide(_run(state), workflow)
    assert settlement is not None
    assert settlement.state == expected[0]
    assert expected[1] in settlement.reason


def test_a_lost_workflow_fails_a_running_run_but_not_a_queued_one() -> None:
    lost = decide(_run("running"), WorkflowState.NOT_FOUND)
    assert lost is not None
    assert (lost.state, "lost" in lost.reason) == ("failed", True)
    # NOTE: a queued run's request may still be in the outbox (Temporal away).
    assert decide(_run("queued"), WorkflowState.NOT_FOUND) is None


@pytest.mark.parametrize("state", ["completed", "failed", "cancelled"])
def test_a_finished_run_is_never_changed(state: str) -> None:
    assert decide(_run(state), WorkflowState.TERMINATED) is None


@pytest.mark.parametrize("workflow", [WorkflowState.RUNNING, WorkflowState.CONTINUED])
def test_an_open_workflow_leaves_its_run(workflow: WorkflowState) -> None:
    assert decide(_run("running"), workflow) is None
