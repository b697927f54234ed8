"""Planning closes an execution with nothing to run, never one whose stop was requested."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from core.replication import (
    ExecutionStatus,
    PlannedTask,
    ReplicationPolicy,
    TaskOperation,
)
from core.settings import Settings
from storage.db.engine import Engines, create_engines
from storage.db.replication import SqlReplicationStore
from tests.api.replication_rows import add_policy, add_running

NOW = datetime(2026, 12, 4, 5, 0, tzinfo=UTC)
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def engines(app_settings: Settings) -> Iterator[Engines]:
    created = create_engines(app_settings)
    yield created
    created.dispose()


def _running(store: SqlReplicationStore, policy: ReplicationPolicy) -> str:
    """A running execution of ``policy`` whose one task was found in place."""
    execution_id = add_running(store, policy, NOW)
    store.add_tasks(
        execution_id,
        [PlannedTask(TaskOperation.COPY, "src/app", "dst/src/app", "1", DIGEST, in_place=True)],
    )
    return execution_id


def test_planning_closes_a_running_execution_but_leaves_a_stopping_one_to_its_stop(
    engines: Engines,
) -> None:
    store = SqlReplicationStore(engines)
    policy = add_policy(store, NOW)

    done = _running(store, policy)
    assert store.finish_running(done, ExecutionStatus.SUCCEEDED, NOW)
    closed = store.execution(done)
    assert closed is not None
    assert (closed.status, closed.total, closed.skipped, closed.succeeded) == (
        ExecutionStatus.SUCCEEDED, 1, 1, 0
    )  # fmt: skip
    assert closed.finished_at is not None
    assert not store.finish_running(done, ExecutionStatus.FAILED, NOW)
    again = store.execution(done)
    assert again is not None
    assert again.status is ExecutionStatus.SUCCEEDED

    stopping = _running(store, policy)
    assert store.request_stop(stopping, "stopped by hand")
    assert not store.finish_running(stopping, ExecutionStatus.SUCCEEDED, NOW)
    left = store.execution(stopping)
    assert left is not None
    assert left.status is ExecutionStatus.STOPPING
    stopped = store.stop_execution(stopping, None, NOW)
    assert stopped is not None
    assert (stopped.status, stopped.reason) == (ExecutionStatus.STOPPED, "stopped by hand")
