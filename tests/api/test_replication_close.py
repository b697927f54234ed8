"""Planning closes an execution with nothing to run, never one whose stop was requested."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from core.replication import (
    ArtifactKind,
    Direction,
    Execution,
    ExecutionStatus,
    PlannedTask,
    ReplicationPolicy,
    TaskOperation,
    TriggerKind,
)
from core.settings import Settings
from storage.db.engine import Engines, create_engines
from storage.db.replication import SqlReplicationStore

NOW = datetime(2026, 12, 4, 5, 0, tzinfo=UTC)
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def engines(app_settings: Settings) -> Iterator[Engines]:
    created = create_engines(app_settings)
    yield created
    created.dispose()


def _running(store: SqlReplicationStore, policy: ReplicationPolicy) -> str:
    """A running execution of ``policy`` whose one task was found in place."""
    execution_id = f"close-{secrets.token_hex(4)}"
    store.add_execution(
        Execution(
            execution_id, policy.id, policy.name, TriggerKind.MANUAL,
            ExecutionStatus.RUNNING, NOW, None, 0, 0, 0, 0,
        )
    )  # fmt: skip
    store.add_tasks(
        execution_id,
        [PlannedTask(TaskOperation.COPY, "src/app", "dst/src/app", "1", DIGEST, in_place=True)],
    )
    return execution_id


def test_planning_closes_a_running_execution_but_leaves_a_stopping_one_to_its_stop(
    engines: Engines,
) -> None:
    store = SqlReplicationStore(engines)
    name = f"close-{secrets.token_hex(4)}"
    policy = store.add_policy(
        ReplicationPolicy(
            0, name, "", True, Direction.PULL, "ep", "src/**", "**", ArtifactKind.ALL,
            True, 0, "dst", TriggerKind.MANUAL, None, False, True, 0, 2, NOW, NOW,
        )
    )  # fmt: skip
    assert policy is not None

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
