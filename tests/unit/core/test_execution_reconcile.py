"""How an open execution ends, by what Temporal says of its workflow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.execution_reconcile import LOST_AFTER, Ending, ending
from core.services.run_reconcile import WorkflowState

STARTED = datetime(2026, 12, 7, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (WorkflowState.RUNNING, None),
        (WorkflowState.CONTINUED, None),
        (WorkflowState.COMPLETED, Ending("the execution's workflow completed without closing it")),
        (WorkflowState.FAILED, Ending("the execution's workflow failed")),
        (WorkflowState.TERMINATED, Ending("the execution's workflow was terminated")),
        (WorkflowState.TIMED_OUT, Ending("the execution's workflow timed out")),
        (
            WorkflowState.CANCELLED,
            Ending("the execution's workflow was cancelled in Temporal", cancelled=True),
        ),
    ],
)
def test_each_workflow_state_ends_an_open_execution_or_leaves_it(
    state: WorkflowState, expected: Ending | None
) -> None:
    assert ending(state, STARTED, STARTED + timedelta(seconds=1)) == expected


def test_a_workflow_temporal_does_not_know_is_lost_only_after_the_grace() -> None:
    lost = Ending("the execution's workflow is not known to Temporal (lost)")
    assert ending(WorkflowState.NOT_FOUND, STARTED, STARTED + LOST_AFTER) is None
    assert ending(WorkflowState.NOT_FOUND, STARTED, STARTED + LOST_AFTER * 2) == lost
    # a row read back without its zone (UTC by convention) compares the same way
    naive = STARTED.replace(tzinfo=None)
    assert ending(WorkflowState.NOT_FOUND, naive, STARTED + LOST_AFTER * 2) == lost
