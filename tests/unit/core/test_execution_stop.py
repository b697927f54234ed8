"""Stopping an execution: what is asked of Temporal and what is recorded, in each state."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

import pytest

from core.errors import ConflictError, NotFoundError, OCIErrorCode, RegistryError
from core.execution_rows import ReplicationExecutionRows
from core.execution_stop import ExecutionStopper
from core.replication import Execution, ExecutionStatus, TriggerKind

if TYPE_CHECKING:
    from core.replication import ReplicationStore

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


class Store:
    """The three calls a stop makes, over one execution."""

    def __init__(self, status: ExecutionStatus) -> None:
        self.row = Execution(
            id="replication-1-abc",
            policy_id=1,
            policy="p",
            trigger=TriggerKind.MANUAL,
            status=status,
            started_at=NOW,
            finished_at=None,
            total=3,
            succeeded=0,
            failed=0,
            skipped=0,
        )

    def execution(self, execution_id: str) -> Execution | None:
        return self.row if execution_id == self.row.id else None

    def request_stop(self, execution_id: str, reason: str) -> bool:
        assert execution_id == self.row.id
        if self.row.status is not ExecutionStatus.RUNNING:
            return False
        self.row = replace(self.row, status=ExecutionStatus.STOPPING, reason=reason)
        return True

    def stop_execution(self, execution_id: str, reason: str | None, now: datetime) -> Execution:
        assert execution_id == self.row.id
        self.row = replace(self.row, status=ExecutionStatus.STOPPED, reason=reason, finished_at=now)
        return self.row


class Temporal:
    def __init__(self, *, running: bool = True, reachable: bool = True) -> None:
        self.running, self.reachable = running, reachable
        self.cancelled: list[str] = []

    async def cancel(self, workflow_id: str, reason: str = "") -> bool:
        if not self.reachable:
            raise ConnectionError("no Temporal")
        assert reason == "stopped by admin"
        self.cancelled.append(workflow_id)
        return self.running


def stopper(store: Store, temporal: Temporal) -> ExecutionStopper[Execution]:
    rows = ReplicationExecutionRows(cast("ReplicationStore", store))
    return ExecutionStopper(rows, temporal, lambda: NOW)


async def test_a_running_execution_is_cancelled_and_marked_stopping() -> None:
    store, temporal = Store(ExecutionStatus.RUNNING), Temporal()
    answer = await stopper(store, temporal).stop("replication-1-abc", "admin")
    assert temporal.cancelled == ["replication-1-abc"]
    assert (answer.status, answer.reason) == (ExecutionStatus.STOPPING, "stopped by admin")


async def test_stopping_again_while_it_settles_changes_nothing() -> None:
    store, temporal = Store(ExecutionStatus.STOPPING), Temporal()
    answer = await stopper(store, temporal).stop("replication-1-abc", "admin")
    assert answer.status is ExecutionStatus.STOPPING
    assert temporal.cancelled == []


@pytest.mark.parametrize(
    "status",
    [
        ExecutionStatus.SUCCEEDED,
        ExecutionStatus.FAILED,
        ExecutionStatus.PARTIAL,
        ExecutionStatus.STOPPED,
    ],
)
async def test_a_finished_execution_is_a_conflict(status: ExecutionStatus) -> None:
    store, temporal = Store(status), Temporal()
    with pytest.raises(ConflictError, match=f"already finished \\({status}\\)"):
        await stopper(store, temporal).stop("replication-1-abc", "admin")
    assert temporal.cancelled == []
    assert store.row.status is status


async def test_an_execution_without_a_running_workflow_is_closed_here() -> None:
    store, temporal = Store(ExecutionStatus.RUNNING), Temporal(running=False)
    answer = await stopper(store, temporal).stop("replication-1-abc", "admin")
    assert (answer.status, answer.finished_at) == (ExecutionStatus.STOPPED, NOW)


async def test_temporal_away_changes_nothing_and_says_so() -> None:
    store, temporal = Store(ExecutionStatus.RUNNING), Temporal(reachable=False)
    with pytest.raises(RegistryError) as refused:
        await stopper(store, temporal).stop("replication-1-abc", "admin")
    assert refused.value.code is OCIErrorCode.UNAVAILABLE
    assert store.row.status is ExecutionStatus.RUNNING


async def test_an_unknown_execution_is_not_found() -> None:
    with pytest.raises(NotFoundError):
        await stopper(Store(ExecutionStatus.RUNNING), Temporal()).stop("nope", "admin")


async def test_the_message_names_the_kind_of_execution() -> None:
    with pytest.raises(NotFoundError, match=r"^replication execution 'nope' not found$"):
        await stopper(Store(ExecutionStatus.RUNNING), Temporal()).stop("nope", "admin")
