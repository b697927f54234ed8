"""Preheat activities: plan an execution, create a provider job, poll it, record, finish.

``deliver_events_preheat`` is the preheat subscriber's activity (``core.subscribers``):
for each enabled ``event_based`` policy of a batch's projects it starts one execution for
the artifacts the batch tagged, whose scan completed or (for policies requiring signed
images) whose signature verified, under an id fixed by the policy and the batch, so a
retried batch starts nothing twice.

``preheat_create_job`` mints a registry token that may only pull the task's repository,
living as long as the job may run, and hands it to the provider; a task whose job was
created already returns that job.
``preheat_poll_job`` polls with exponential back-off, heartbeating all the while (a
worker that dies mid-poll is noticed by the heartbeat timeout and the poll resumes
elsewhere: polling has no side effect).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import anyio.to_thread
from temporalio import activity
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from activities.heartbeats import keeps_heartbeating
from activities.search_attributes import search_values, typed_search_attributes
from core.event_batches import EventBatch, batch_execution_id
from core.preheat import (
    CREATE_JOB,
    DELIVER_EVENTS_PREHEAT,
    EXECUTION_WORKFLOW,
    FINAL_ERROR,
    FINISH,
    NEXT_TASKS,
    PLAN,
    POLL_JOB,
    RECORD_TASK,
    STOP,
    Criteria,
    ExecutionRequest,
    FinishInput,
    JobRef,
    JobState,
    JobStatus,
    Plan,
    PollInput,
    ProviderError,
    ProviderRefusedError,
    RecordInput,
    TaskInput,
    TriggerKind,
    criteria_of,
    event_candidates,
)
from core.preheat_service import PreheatRunner
from core.task_pages import PageRequest, TaskIds


def _final(exc: Exception) -> ApplicationError:
    return ApplicationError(str(exc), type=FINAL_ERROR, non_retryable=True)


class PreheatActivities:
    """The activities, over the runner of the composition root."""

    def __init__(self, runner: PreheatRunner) -> None:
        self._runner = runner

    @activity.defn(name=PLAN)
    async def preheat_plan(self, request: ExecutionRequest) -> Plan:
        """Store the execution's tasks (listing the project when the request names none)."""
        execution_id = request.execution_id or activity.info().workflow_id or ""
        try:
            return await anyio.to_thread.run_sync(self._runner.plan, request, execution_id)
        except LookupError as exc:
            raise _final(exc) from exc

    @activity.defn(name=NEXT_TASKS)
    def preheat_next_tasks(self, page: PageRequest) -> TaskIds:
        """The next page of the execution's open tasks (a read; safe to repeat)."""
        return self._runner.next_tasks(page)

    @activity.defn(name=CREATE_JOB)
    async def preheat_create_job(self, params: TaskInput) -> JobRef:
        """Create the task's provider job (once: a created job is returned again)."""
        try:
            task, spec, client = await anyio.to_thread.run_sync(
                self._runner.job_spec, params.task_id, params.poll
            )
            if task.job_id:
                return JobRef(task.job_id)
            job = await client.create(spec)
        except (LookupError, ProviderRefusedError) as exc:
            raise _final(exc) from exc
        await anyio.to_thread.run_sync(self._runner.set_job, params.task_id, job)
        return job

    @activity.defn(name=POLL_JOB)
    async def preheat_poll_job(self, params: PollInput) -> JobStatus:
        """Poll the job until it ends (back-off doubling up to the maximum, heartbeating)."""
        try:
            client = await anyio.to_thread.run_sync(self._runner.client_of, params.task_id)
        except LookupError as exc:
            raise _final(exc) from exc
        poll = params.poll
        wait = poll.initial_seconds
        deadline = time.monotonic() + poll.job_timeout_seconds
        last_error = ""
        while time.monotonic() < deadline:
            try:
                status = await client.status(params.job_id)
            except ProviderRefusedError as exc:
                raise _final(exc) from exc
            except ProviderError as exc:
                last_error = str(exc)
                status = None
            if status is not None and status.state is not JobState.RUNNING:
                return status
            activity.heartbeat({"job_id": params.job_id, "error": last_error})
            slept = 0.0
            while slept < wait:
                step = min(wait - slept, poll.heartbeat_seconds)
                await asyncio.sleep(step)
                slept += step
                activity.heartbeat({"job_id": params.job_id, "error": last_error})
            wait = min(wait * 2, poll.max_seconds)
        reason = f"job {params.job_id} did not finish in {poll.job_timeout_seconds:.0f}s"
        raise _final(TimeoutError(reason + (f" (last error: {last_error})" if last_error else "")))

    @activity.defn(name=RECORD_TASK)
    def preheat_record_task(self, params: RecordInput) -> None:
        """Record a task's result (written whole: a repeat writes the same)."""
        self._runner.record(params)

    @activity.defn(name=FINISH)
    def preheat_finish(self, params: FinishInput) -> str:
        """Close the execution; its final status."""
        finished = self._runner.finish(params.execution_id, params.reason)
        return "unknown" if finished is None else str(finished.status)

    @activity.defn(name=STOP)
    def preheat_stop(self, params: FinishInput) -> str:
        """Close a stopped execution (its open tasks ``stopped``); its status."""
        stopped = self._runner.stop(params.execution_id, params.reason)
        return "unknown" if stopped is None else str(stopped.status)

    @activity.defn(name=DELIVER_EVENTS_PREHEAT)
    @keeps_heartbeating
    async def deliver_events_preheat(self, batch: EventBatch) -> int:
        """Start one execution per event-based policy the batch concerns."""
        requests = await anyio.to_thread.run_sync(
            self._plan_batch, batch, activity.info().workflow_id or ""
        )
        client = activity.client()
        queue = activity.info().task_queue
        for request, policy, project in requests:
            with contextlib.suppress(WorkflowAlreadyStartedError):
                await client.start_workflow(
                    EXECUTION_WORKFLOW,
                    request,
                    id=request.execution_id,
                    task_queue=queue,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    search_attributes=typed_search_attributes(
                        search_values(policy=policy, project=project)
                    ),
                )
        return len(batch.events)

    def _plan_batch(
        self, batch: EventBatch, batch_run: str
    ) -> list[tuple[ExecutionRequest, str, str]]:
        planned: list[tuple[ExecutionRequest, str, str]] = []
        projects = {e.project_id for e in batch.events if e.project_id is not None}
        service = self._runner.service
        for project_id in sorted(projects):
            inherited: Criteria | None = None
            for policy in service.store.policies(project_id):
                if not policy.fires_on_events:
                    continue
                if inherited is None:
                    inherited = self._runner.project_criteria(project_id)
                applied = criteria_of(policy, inherited)
                candidates = event_candidates(policy, batch.events, applied.signed_only)
                if not candidates:
                    continue
                request = service.new_execution(
                    policy,
                    TriggerKind.EVENT_BASED,
                    candidates,
                    execution_id=batch_execution_id(
                        "preheat", policy.id, batch.batch_id, batch_run
                    ),
                )
                planned.append((request, policy.name, policy.project))
        return planned
