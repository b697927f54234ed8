"""An execution's pending tasks come a page at a time, in id order, from its database.

Replication (its runner's plan and pages) and preheat (its store's pages), on both backends.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import cast

import pytest

from core import preheat
from core.replication import (
    ExecutionRequest,
    PlannedTask,
    TaskOperation,
    TaskResult,
    TaskStatus,
    TriggerKind,
)
from core.replication_run import ReplicaClients, ReplicationRunner
from core.replication_settings import ReplicationSettings
from core.settings import Settings
from core.task_pages import PageRequest
from storage.db.engine import Engines, create_engines
from storage.db.preheat import SqlPreheatStore
from storage.db.replication import SqlReplicationStore
from tests.api.replication_rows import add_policy, add_running

NOW = datetime(2026, 12, 6, 22, 0, tzinfo=UTC)
DIGEST = "sha256:" + "cd" * 32


@pytest.fixture
def engines(app_settings: Settings) -> Iterator[Engines]:
    created = create_engines(app_settings)
    yield created
    created.dispose()


def _execution(store: SqlReplicationStore) -> tuple[int, str]:
    policy = add_policy(store, NOW)
    return policy.id, add_running(store, policy, NOW)


def _task(number: int, *, in_place: bool = False) -> PlannedTask:
    return PlannedTask(
        TaskOperation.COPY, f"src/app{number}", f"dst/src/app{number}", "1", DIGEST, in_place
    )


async def test_a_paged_plan_gives_the_first_page_and_the_rest_follows_in_order(
    engines: Engines,
) -> None:
    store = SqlReplicationStore(engines)
    planned = [_task(n, in_place=n == 3) for n in range(7)]  # one of seven found in place
    policy_id, execution_id = _execution(store)
    settings = ReplicationSettings(tasks_per_page=2, tasks_per_run=4)
    runner = ReplicationRunner(store, cast("ReplicaClients", None), settings, 4 * 1024 * 1024)
    request = ExecutionRequest(execution_id, policy_id, TriggerKind.MANUAL, planned, paged=True)

    plan = await runner.plan(request, execution_id)

    stored = store.tasks(execution_id)
    pending = [t.id for t in stored if t.status is TaskStatus.PENDING]
    assert len(pending) == 6
    assert (plan.tasks, plan.more, plan.page_tasks, plan.run_tasks) == (pending[:2], True, 2, 4)
    assert plan.names == [("src", "src/app0"), ("src", "src/app1")]
    # a task settled meanwhile (copied by the run before a continuation) is not paged again
    store.record_task(pending[2], TaskResult(TaskStatus.COPIED, DIGEST), NOW)
    second = runner.next_tasks(PageRequest(execution_id, plan.tasks[-1], 2))
    assert (second.tasks, second.more) == (pending[3:5], True)
    third = runner.next_tasks(PageRequest(execution_id, second.tasks[-1], 2))
    assert (third.tasks, third.more) == (pending[5:], False)
    assert third.names == [("src", "src/app6")]
    assert runner.next_tasks(PageRequest(execution_id, third.tasks[-1], 2)).tasks == []

    # planning again (a retried plan) stores nothing twice and gives the same first page
    again = await runner.plan(request, execution_id)
    assert len(store.tasks(execution_id)) == 7
    assert (again.tasks, again.more) == (pending[:2], True)


async def test_a_plan_not_paged_gives_every_pending_task(engines: Engines) -> None:
    store = SqlReplicationStore(engines)
    planned = [_task(n) for n in range(5)]
    policy_id, execution_id = _execution(store)
    settings = ReplicationSettings(tasks_per_page=2)
    runner = ReplicationRunner(store, cast("ReplicaClients", None), settings, 4 * 1024 * 1024)

    plan = await runner.plan(
        ExecutionRequest(execution_id, policy_id, TriggerKind.MANUAL, planned), execution_id
    )

    assert len(plan.tasks) == 5
    assert not plan.more


def test_preheat_pages_hold_the_tasks_not_yet_recorded(engines: Engines) -> None:
    store = SqlPreheatStore(engines)
    execution_id = f"pages-{secrets.token_hex(4)}"
    store.add_execution(
        preheat.Execution(
            execution_id, 1, 1, "all", preheat.TriggerKind.MANUAL,
            preheat.ExecutionStatus.RUNNING, NOW, None, 0, 0, 0,
        )
    )  # fmt: skip
    stored = store.add_tasks(
        execution_id, [preheat.Candidate(f"p/app{n}", "v1", DIGEST) for n in range(5)]
    )
    ids = [t.id for t in stored]
    store.set_job(ids[0], "job-0")  # its job created, not recorded yet: still to be polled
    store.record_task(ids[1], preheat.RecordInput(ids[1], True, "job-1"), NOW)

    first = store.pending_tasks(execution_id, 0, 2)
    assert [t.id for t in first] == [ids[0], ids[2]]
    assert first[0].status is preheat.TaskStatus.RUNNING
    assert [t.id for t in store.pending_tasks(execution_id, ids[2], 2)] == ids[3:]
    assert store.pending_tasks(execution_id, ids[4], 2) == []
