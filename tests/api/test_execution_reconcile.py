"""Executions whose workflow ended without closing them are closed when they are read.

The stores are the real ones on both backends; Temporal's answers come from a table here
(the real server terminates workflows in ``tests/replication/test_stop.py`` and
``tests/integration/test_preheat.py``).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from core import preheat
from core.execution_reconcile import LOST_AFTER, Ending, ExecutionReconciler
from core.execution_rows import PreheatExecutionRows, ReplicationExecutionRows
from core.replication import (
    Execution,
    ExecutionStatus,
    PlannedTask,
    TaskOperation,
    TaskResult,
    TaskStatus,
)
from core.services.run_reconcile import WorkflowState
from core.settings import Settings
from storage.db.engine import Engines, create_engines
from storage.db.preheat import SqlPreheatStore
from storage.db.replication import SqlReplicationStore
from tests.api.replication_rows import add_policy, add_running

STARTED = datetime(2026, 12, 7, 0, 0, tzinfo=UTC)
NOW = STARTED + timedelta(minutes=1)
DIGEST = "sha256:" + "ef" * 32


class Temporal:
    """Workflow states by id; ``away`` makes every call fail; ``asked`` records calls."""

    def __init__(self, states: dict[str, WorkflowState] | None = None) -> None:
        self.states = states or {}
        self.away = False
        self.asked: list[str] = []

    async def state(self, workflow_id: str) -> WorkflowState:
        self.asked.append(workflow_id)
        if self.away:
            raise ConnectionError("Temporal is away")
        return self.states.get(workflow_id, WorkflowState.RUNNING)


@pytest.fixture
def engines(app_settings: Settings) -> Iterator[Engines]:
    created = create_engines(app_settings)
    yield created
    created.dispose()


def _replication(store: SqlReplicationStore, tasks: int) -> tuple[str, list[int]]:
    execution_id = add_running(store, add_policy(store, STARTED), STARTED)
    planned = [
        PlannedTask(TaskOperation.COPY, f"src/app{n}", f"dst/src/app{n}", "1", DIGEST)
        for n in range(tasks)
    ]
    return execution_id, [t.id for t in store.add_tasks(execution_id, planned)]


def _reconciler(
    store: SqlReplicationStore, temporal: Temporal, now: datetime = NOW
) -> ExecutionReconciler[Execution]:
    return ExecutionReconciler(ReplicationExecutionRows(store), temporal, lambda: now)


async def test_a_terminated_run_closes_failed_and_its_unrun_tasks_say_why(
    engines: Engines,
) -> None:
    store = SqlReplicationStore(engines)
    execution_id, ids = _replication(store, 3)
    store.record_task(ids[0], TaskResult(TaskStatus.COPIED, DIGEST, 10, 1), NOW)
    temporal = Temporal({execution_id: WorkflowState.TERMINATED})
    open_row = store.execution(execution_id)
    assert open_row is not None

    [closed] = await _reconciler(store, temporal).reconciled([open_row])

    assert closed.status is ExecutionStatus.FAILED
    assert closed.reason == "the execution's workflow was terminated"
    assert closed.finished_at is not None
    assert (closed.total, closed.succeeded, closed.failed) == (3, 1, 2)
    assert store.execution(execution_id) == closed
    results = {t.id: t for t in store.tasks(execution_id)}
    assert results[ids[0]].status is TaskStatus.COPIED
    for task_id in ids[1:]:
        assert results[task_id].status is TaskStatus.FAILED
        assert results[task_id].error == "not run: the execution's workflow was terminated"
    # read again: closed rows cost no further call to Temporal
    assert await _reconciler(store, temporal).one(closed) == closed
    assert temporal.asked == [execution_id]


async def test_a_stopping_run_whose_workflow_ended_closes_stopped_with_its_stop_reason(
    engines: Engines,
) -> None:
    store = SqlReplicationStore(engines)
    stopping, _ = _replication(store, 2)
    cancelled, _ = _replication(store, 1)
    assert store.request_stop(stopping, "stopped by alice")
    temporal = Temporal({stopping: WorkflowState.TERMINATED, cancelled: WorkflowState.CANCELLED})
    rows = [store.execution(stopping), store.execution(cancelled)]

    first, second = await _reconciler(store, temporal).reconciled([r for r in rows if r])

    assert (first.status, first.reason) == (ExecutionStatus.STOPPED, "stopped by alice")
    assert {t.status for t in store.tasks(stopping)} == {TaskStatus.STOPPED}
    assert second.status is ExecutionStatus.STOPPED
    assert second.reason == "the execution's workflow was cancelled in Temporal"


async def test_runs_still_going_or_just_written_are_left_open(engines: Engines) -> None:
    store = SqlReplicationStore(engines)
    running, _ = _replication(store, 1)
    unknown, _ = _replication(store, 1)
    continued, _ = _replication(store, 1)
    temporal = Temporal(
        {
            running: WorkflowState.RUNNING,
            unknown: WorkflowState.NOT_FOUND,
            continued: WorkflowState.CONTINUED,
        }
    )
    rows = [r for r in map(store.execution, [running, unknown, continued]) if r]

    left = await _reconciler(store, temporal).reconciled(rows)

    assert [r.status for r in left] == [ExecutionStatus.RUNNING] * 3
    assert left == [store.execution(i) for i in (running, unknown, continued)]
    # a workflow Temporal does not know, once the execution is older than the grace: lost
    later = STARTED + LOST_AFTER + timedelta(seconds=1)
    _, lost, _ = await _reconciler(store, temporal, later).reconciled(rows)
    assert lost.status is ExecutionStatus.FAILED
    assert lost.reason == "the execution's workflow is not known to Temporal (lost)"


async def test_a_run_that_closed_itself_meanwhile_keeps_what_it_recorded(
    engines: Engines,
) -> None:
    store = SqlReplicationStore(engines)
    execution_id, ids = _replication(store, 1)
    stale = store.execution(execution_id)  # read while it ran
    assert stale is not None
    store.record_task(ids[0], TaskResult(TaskStatus.COPIED, DIGEST, 10, 1), NOW)
    assert store.finish_running(execution_id, ExecutionStatus.SUCCEEDED, NOW)
    temporal = Temporal({execution_id: WorkflowState.COMPLETED})

    [after] = await _reconciler(store, temporal).reconciled([stale])

    assert (after.status, after.reason) == (ExecutionStatus.SUCCEEDED, None)
    assert not store.close_abandoned(execution_id, Ending("late"), NOW)
    assert store.execution(execution_id) == after


async def test_temporal_away_leaves_the_rows_and_is_asked_once(engines: Engines) -> None:
    store = SqlReplicationStore(engines)
    ids = [_replication(store, 1)[0] for _ in range(3)]
    temporal = Temporal(dict.fromkeys(ids, WorkflowState.TERMINATED))
    temporal.away = True
    rows = [r for r in map(store.execution, ids) if r]

    left = await _reconciler(store, temporal).reconciled(rows)

    assert left == rows
    assert temporal.asked == ids[:1]


async def test_a_terminated_preheat_closes_failed_with_its_open_tasks(engines: Engines) -> None:
    store = SqlPreheatStore(engines)
    execution_id, ids = _preheat_running(store, 3)
    store.record_task(ids[0], preheat.RecordInput(ids[0], True, "job-0"), NOW)
    store.set_job(ids[1], "job-1")  # its job created, still polled when the run ended
    temporal = Temporal({execution_id: WorkflowState.TIMED_OUT})
    reconciler = ExecutionReconciler(PreheatExecutionRows(store), temporal, lambda: NOW)
    open_row = store.execution(execution_id)
    assert open_row is not None

    closed = await reconciler.one(open_row)

    assert closed.status is preheat.ExecutionStatus.FAILED
    assert closed.reason == "the execution's workflow timed out"
    assert (closed.total, closed.succeeded, closed.failed) == (3, 1, 2)
    tasks = {t.id: t for t in store.tasks(execution_id)}
    assert tasks[ids[0]].status is preheat.TaskStatus.SUCCEEDED
    for task_id in ids[1:]:
        assert tasks[task_id].status is preheat.TaskStatus.FAILED
        assert tasks[task_id].error == "not finished: the execution's workflow timed out"
    assert tasks[ids[1]].job_id == "job-1"
    assert not store.close_abandoned(execution_id, Ending("again"), NOW)


def _preheat_running(store: SqlPreheatStore, tasks: int) -> tuple[str, list[int]]:
    execution_id = f"preheat-{secrets.token_hex(4)}"
    store.add_execution(
        preheat.Execution(
            execution_id, 1, 1, "all", preheat.TriggerKind.MANUAL,
            preheat.ExecutionStatus.RUNNING, STARTED, None, 0, 0, 0,
        )
    )  # fmt: skip
    stored = store.add_tasks(
        execution_id, [preheat.Candidate(f"p/app{n}", "v1", DIGEST) for n in range(tasks)]
    )
    return execution_id, [t.id for t in stored]


def test_a_stopped_preheat_closes_its_unfinished_tasks_and_nothing_reopens_them(
    engines: Engines,
) -> None:
    store = SqlPreheatStore(engines)
    execution_id, ids = _preheat_running(store, 3)
    store.record_task(ids[0], preheat.RecordInput(ids[0], True, "job-0"), NOW)
    store.set_job(ids[1], "job-1")
    assert store.request_stop(execution_id, "stopped by alice")
    assert not store.request_stop(execution_id, "stopped by bob")
    stopping = store.execution(execution_id)
    assert stopping is not None
    assert (stopping.status, stopping.reason) == (
        preheat.ExecutionStatus.STOPPING,
        "stopped by alice",
    )
    # the run's own close does not overwrite a stop in progress
    finished = store.finish_execution(execution_id, None, None, NOW)
    assert finished == stopping

    stopped = store.stop_execution(execution_id, None, NOW)

    assert stopped is not None
    assert (stopped.status, stopped.reason, stopped.finished_at) == (
        preheat.ExecutionStatus.STOPPED,
        "stopped by alice",
        NOW,
    )
    assert (stopped.total, stopped.succeeded, stopped.failed) == (3, 1, 2)
    tasks = {t.id: t for t in store.tasks(execution_id)}
    assert tasks[ids[0]].status is preheat.TaskStatus.SUCCEEDED
    for task_id in ids[1:]:
        assert tasks[task_id].status is preheat.TaskStatus.STOPPED
        assert tasks[task_id].error == preheat.STOPPED_TASK
    assert tasks[ids[1]].job_id == "job-1"
    # a late record or job of an activity the stop overtook changes no closed task
    store.record_task(ids[1], preheat.RecordInput(ids[1], True, "job-1"), NOW)
    store.set_job(ids[2], "job-2")
    late = {t.id: t for t in store.tasks(execution_id)}
    assert late[ids[1]].status is preheat.TaskStatus.STOPPED
    assert (late[ids[2]].status, late[ids[2]].job_id) == (preheat.TaskStatus.STOPPED, "job-2")
    assert store.stop_execution(execution_id, "again", NOW) == stopped
    assert not store.close_abandoned(execution_id, Ending("late"), NOW)


async def test_a_preheat_whose_workflow_ended_while_stopping_reads_stopped(
    engines: Engines,
) -> None:
    store = SqlPreheatStore(engines)
    execution_id, _ = _preheat_running(store, 2)
    assert store.request_stop(execution_id, "stopped by alice")
    temporal = Temporal({execution_id: WorkflowState.COMPLETED})
    reconciler = ExecutionReconciler(PreheatExecutionRows(store), temporal, lambda: NOW)
    stopping = store.execution(execution_id)
    assert stopping is not None

    closed = await reconciler.one(stopping)

    assert (closed.status, closed.reason) == (preheat.ExecutionStatus.STOPPED, "stopped by alice")
    assert {t.status for t in store.tasks(execution_id)} == {preheat.TaskStatus.STOPPED}
