"""Preheat executions: one run per execution, each candidate's job created and polled.

The run plans its tasks (an activity that lists the project, or takes the candidates an
event batch named, and applies the filters), then for each pending task, at most the
plan's concurrency at a time: creates the provider job (retried with back-off while the
provider is away; a refusal is final), polls it until it ends (a heartbeating activity
bounded by the job timeout) and records the result (status, job id, per-peer results).
The execution is closed with the status its tasks give.

Stopped (its workflow cancelled, ``core.execution_stop``): a job being created is
waited for, the polls in flight end at their next heartbeat, then the tasks that did not
finish are marked ``stopped`` and the execution is closed ``stopped``; the run ends
cancelled with no activity left. A provider job already created runs on at the provider
(providers offer no cancel).

The pending tasks come a page at a time (the plan carries the first page, ``NEXT_TASKS``
the next, a local activity), and a run that has handled ``Plan.run_tasks`` tasks, or
that Temporal suggests to, waits for them at the end of its page and continues as a new
run of the same execution (``workflows.task_pages``). Runs recorded before
:data:`PAGED_TASKS` replay as they ran: the whole plan at once, one run.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from typing import Final

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, is_cancelled_exception
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from core.preheat import (
        CREATE_JOB,
        EXECUTION_WORKFLOW,
        FINAL_ERROR,
        FINISH,
        JOB_GRACE_SECONDS,
        NEXT_TASKS,
        PLAN,
        POLL_JOB,
        RECORD_TASK,
        STOP,
        Continued,
        ExecutionRequest,
        FinishInput,
        JobRef,
        JobState,
        JobStatus,
        Plan,
        PollInput,
        RecordInput,
        TaskInput,
    )
    from core.task_pages import TaskIds
    from workflows.execution_stop import closing_when_stopped
    from workflows.task_pages import Paging, run_pages

#: Bound of planning (listing a large project included).
PLAN_TIMEOUT: Final = timedelta(minutes=30)
#: The patch that pages the pending tasks and continues as new every ``Plan.run_tasks``.
PAGED_TASKS: Final = "preheat-paged-tasks"
#: Bound of one job creation and of the bookkeeping activities.
STEP_TIMEOUT: Final = timedelta(minutes=2)
_STEP_RETRY: Final = RetryPolicy(maximum_interval=timedelta(seconds=30))
_CALL_RETRY: Final = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=10,
    non_retryable_error_types=[FINAL_ERROR],
)


def _reason(exc: BaseException) -> str:
    cause = exc.cause if isinstance(exc, ActivityError) else None
    return str(cause or exc)[:2048]


@workflow.defn(name=EXECUTION_WORKFLOW)
class PreheatExecutionWorkflow:
    """One execution of a preheat policy."""

    @workflow.run
    async def run(self, request: ExecutionRequest) -> str:
        """Plan, preheat every task (bounded concurrency), finish; the final status.

        Cancelled (the execution stopped): the execution is closed ``stopped`` and the
        run ends cancelled.
        """
        execution_id = request.execution_id or workflow.info().workflow_id
        return await closing_when_stopped(
            self._run(request, execution_id),
            STOP,
            lambda reason: FinishInput(execution_id, reason),
            step_timeout=STEP_TIMEOUT,
            retry=_STEP_RETRY,
        )

    async def _run(self, request: ExecutionRequest, execution_id: str) -> str:
        if request.continued is not None:
            plan = request.continued.plan
            page = await _paging(execution_id, plan).next_page(request.continued.after)
            return await self._run_pages(request, execution_id, plan, page)
        paged = workflow.patched(PAGED_TASKS)
        try:
            plan = await workflow.execute_activity(
                PLAN,
                replace(request, paged=True) if paged else request,
                result_type=Plan,
                start_to_close_timeout=PLAN_TIMEOUT,
                retry_policy=RetryPolicy(
                    maximum_interval=timedelta(minutes=1),
                    maximum_attempts=20,
                    non_retryable_error_types=[FINAL_ERROR],
                ),
                # NOTE: a stop waits for the plan, so no task is stored after the close
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
        except ActivityError as exc:
            if is_cancelled_exception(exc):
                raise
            return await self._finish(execution_id, _reason(exc))
        if workflow.cancellation_reason() is not None:
            # NOTE: stopped while planning: the plan completed, nothing is preheated
            raise asyncio.CancelledError
        if paged:
            return await self._run_pages(
                request, execution_id, plan, TaskIds(plan.tasks, plan.more)
            )
        gate = asyncio.Semaphore(max(plan.concurrency, 1))

        async def one(task_id: int) -> None:
            async with gate:
                await self._preheat(TaskInput(execution_id, task_id, plan.poll))

        await asyncio.gather(*(one(task_id) for task_id in plan.tasks))
        return await self._finish(execution_id, None)

    async def _run_pages(
        self, request: ExecutionRequest, execution_id: str, plan: Plan, page: TaskIds
    ) -> str:
        """Run ``page`` and the pages after it; continue as new every ``plan.run_tasks``."""

        async def one(found: TaskIds, index: int) -> None:
            await self._preheat(TaskInput(execution_id, found.tasks[index], plan.poll))

        after = request.continued.after if request.continued is not None else 0
        resume = await run_pages(page, _paging(execution_id, plan), after=after, run_one=one)
        if resume is not None:
            workflow.continue_as_new(
                replace(
                    request,
                    execution_id=execution_id,
                    candidates=[],
                    continued=Continued(resume, replace(plan, tasks=[])),
                )
            )
        return await self._finish(execution_id, None)

    @staticmethod
    async def _preheat(params: TaskInput) -> None:
        poll = params.poll
        try:
            job: JobRef = await workflow.execute_activity(
                CREATE_JOB,
                params,
                result_type=JobRef,
                start_to_close_timeout=STEP_TIMEOUT,
                retry_policy=_CALL_RETRY,
                # NOTE: stopped, a job being created is waited for, so its task names it
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
        except ActivityError as exc:
            if is_cancelled_exception(exc):
                raise
            await _record(RecordInput(params.task_id, False, None, error=_reason(exc)))
            return
        try:
            status: JobStatus = await workflow.execute_activity(
                POLL_JOB,
                PollInput(params.task_id, job.job_id, poll),
                result_type=JobStatus,
                schedule_to_close_timeout=timedelta(
                    seconds=poll.job_timeout_seconds + JOB_GRACE_SECONDS
                ),
                heartbeat_timeout=timedelta(seconds=3 * poll.heartbeat_seconds),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=1),
                    maximum_interval=timedelta(seconds=30),
                    non_retryable_error_types=[FINAL_ERROR],
                ),
                # NOTE: stopped, the poll ends at its next heartbeat and the run waits for
                # it: nothing polls the job once the stop has settled
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
        except ActivityError as exc:
            if is_cancelled_exception(exc):
                raise
            await _record(RecordInput(params.task_id, False, job.job_id, error=_reason(exc)))
            return
        await _record(
            RecordInput(
                params.task_id,
                status.state is JobState.SUCCEEDED,
                job.job_id,
                list(status.peers),
                status.message,
            )
        )

    @staticmethod
    async def _finish(execution_id: str, reason: str | None) -> str:
        status: str = await workflow.execute_activity(
            FINISH,
            FinishInput(execution_id, reason),
            result_type=str,
            start_to_close_timeout=STEP_TIMEOUT,
            retry_policy=_STEP_RETRY,
            # NOTE: a stop arriving while the run closes lets the close complete
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        return status


async def _record(params: RecordInput) -> None:
    await workflow.execute_activity(
        RECORD_TASK, params, start_to_close_timeout=STEP_TIMEOUT, retry_policy=_STEP_RETRY
    )


def _paging(execution_id: str, plan: Plan) -> Paging[TaskIds]:
    return Paging(
        execution_id, NEXT_TASKS, TaskIds, plan.concurrency, plan.page_tasks, plan.run_tasks
    )
