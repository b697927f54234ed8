"""Replication activities: plan an execution, page its tasks, copy one, record, finish.

``deliver_events_replication`` is the replication subscriber's activity
(``core.subscribers``): for each enabled event-triggered push policy it plans the batch's
tasks and starts one execution for them, whose id is fixed by the policy and the batch,
so a retried batch starts nothing twice.

``replication_copy`` heartbeats the copy's resume state (the open upload sessions and
their offsets) after each acknowledged chunk; an attempt after a worker died reads it
back and continues those uploads from the offsets the destination reports. A destination
or source that cannot be reached fails the attempt (Temporal retries it with back-off);
a refusal, bad content or a missing source is final and recorded on the task. A copy
cancelled because its execution was stopped (delivered at its next heartbeat) records
the task as ``stopped`` with the bytes it had sent, and sends nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Final

import anyio.to_thread
from temporalio import activity
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from activities.heartbeats import keeps_heartbeating
from activities.search_attributes import search_values, typed_search_attributes
from core.event_batches import EventBatch, batch_execution_id
from core.replication import (
    COPY_ARTIFACT,
    DELIVER_EVENTS_REPLICATION,
    EXECUTION_WORKFLOW,
    FAIL_TASK,
    FINAL_ERROR,
    FINISH_EXECUTION,
    NEXT_TASKS,
    PLAN_EXECUTION,
    STOP_EXECUTION,
    ArtifactInput,
    ExecutionRequest,
    FailInput,
    FinishInput,
    Plan,
    ReplicationService,
    TaskPage,
    TaskResult,
    TaskStatus,
    TriggerKind,
    event_tasks,
)
from core.replication_run import ReplicationRunner
from core.task_pages import PageRequest
from core.upstream_ports import UpstreamError, UpstreamUnavailableError

#: Seconds between heartbeats while nothing new was acknowledged.
HEARTBEAT_EVERY: Final = 2.0


def _final(exc: Exception) -> ApplicationError:
    return ApplicationError(str(exc), type=FINAL_ERROR, non_retryable=True)


class ReplicationActivities:
    """The activities, over the runner and service of the composition root."""

    def __init__(self, runner: ReplicationRunner, service: ReplicationService) -> None:
        self._runner = runner
        self._service = service

    @activity.defn(name=PLAN_EXECUTION)
    async def replication_plan(self, request: ExecutionRequest) -> Plan:
        """Store the execution's tasks (listing the source when the request has none)."""
        execution_id = request.execution_id or activity.info().workflow_id or ""
        try:
            await anyio.to_thread.run_sync(self._runner.record_start, request, execution_id)
            return await self._runner.plan(request, execution_id)
        except UpstreamUnavailableError:
            raise
        except (UpstreamError, LookupError) as exc:
            raise _final(exc) from exc

    @activity.defn(name=NEXT_TASKS)
    def replication_next_tasks(self, page: PageRequest) -> TaskPage:
        """The next page of the execution's pending tasks (a read; safe to repeat)."""
        return self._runner.next_tasks(page)

    @activity.defn(name=COPY_ARTIFACT)
    async def replication_copy(self, params: ArtifactInput) -> TaskResult:
        """Copy one task's artifact, resuming from the last heartbeat's uploads."""
        details = activity.info().heartbeat_details
        resume: dict[str, Any] | None = None
        if details and isinstance(details[0], dict):
            resume = details[0]
        state: dict[str, Any] = dict(resume or {})

        def progress(update: dict[str, Any]) -> None:
            state.clear()
            state.update(update)
            activity.heartbeat(dict(state))

        async def beat() -> None:
            while True:
                await asyncio.sleep(HEARTBEAT_EVERY)
                activity.heartbeat(dict(state))

        ticker = asyncio.create_task(beat())
        try:
            return await self._runner.copy(params.policy_id, params.task_id, resume, progress)
        except UpstreamUnavailableError:
            raise
        except (UpstreamError, LookupError) as exc:
            sent = int(state.get("bytes_sent", 0))
            await anyio.to_thread.run_sync(self._runner.fail, params.task_id, str(exc), sent)
            return TaskResult(TaskStatus.FAILED, None, sent, error=str(exc))
        except asyncio.CancelledError:
            why = activity.cancellation_details()
            if why is not None and why.cancel_requested:
                # NOTE: the execution was stopped (not a lost heartbeat or a worker
                # shutting down, after which the copy is retried): say what it had sent
                sent = int(state.get("bytes_sent", 0))
                await anyio.to_thread.run_sync(self._runner.interrupted, params.task_id, sent)
            raise
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker

    @activity.defn(name=FAIL_TASK)
    def replication_fail_task(self, params: FailInput) -> None:
        """Record a task whose attempts ran out."""
        self._runner.fail(params.task_id, params.reason)

    @activity.defn(name=FINISH_EXECUTION)
    def replication_finish(self, params: FinishInput) -> str:
        """Close the execution; its final status."""
        finished = self._runner.finish(params.execution_id, params.reason)
        return "unknown" if finished is None else str(finished.status)

    @activity.defn(name=STOP_EXECUTION)
    def replication_stop(self, params: FinishInput) -> str:
        """Close a stopped execution (its tasks that did not run are marked stopped)."""
        stopped = self._runner.stop(params.execution_id, params.reason)
        return "unknown" if stopped is None else str(stopped.status)

    @activity.defn(name=DELIVER_EVENTS_REPLICATION)
    @keeps_heartbeating
    async def deliver_events_replication(self, batch: EventBatch) -> int:
        """Start one execution per event-triggered policy the batch concerns."""
        requests = await anyio.to_thread.run_sync(
            self._plan_batch, batch, activity.info().workflow_id or ""
        )
        client = activity.client()
        queue = activity.info().task_queue
        for request, policy, names in requests:
            project, repository = names
            with contextlib.suppress(WorkflowAlreadyStartedError):
                await client.start_workflow(
                    EXECUTION_WORKFLOW,
                    request,
                    id=request.execution_id,
                    task_queue=queue,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    search_attributes=typed_search_attributes(
                        search_values(policy=policy, project=project, repository=repository)
                    ),
                )
        return len(batch.events)

    def _plan_batch(
        self, batch: EventBatch, batch_run: str
    ) -> list[tuple[ExecutionRequest, str, tuple[str | None, str | None]]]:
        planned: list[tuple[ExecutionRequest, str, tuple[str | None, str | None]]] = []
        for policy in self._service.policies():
            if not policy.fires_on_events:
                continue
            tasks = event_tasks(policy, batch.events)
            if not tasks:
                continue
            request = self._service.new_execution(
                policy,
                TriggerKind.EVENT,
                tasks,
                execution_id=batch_execution_id(
                    "replication", policy.id, batch.batch_id, batch_run
                ),
            )
            repositories = {task.source for task in tasks}
            repository = repositories.pop() if len(repositories) == 1 else None
            project = repository.partition("/")[0] if repository else None
            planned.append((request, policy.name, (project, repository)))
        return planned
