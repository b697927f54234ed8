"""Replication executions: one run per execution, one child run per artifact.

The execution's run plans its tasks (a local activity, run by the worker that runs the
workflow task, that lists the source or takes the tasks an event batch named; a worker
lost while planning is noticed by the workflow task's timeout and the plan is made again
by the next worker), starts a child run per pending task, at most the policy's
concurrency at a time, and closes the execution with the status its tasks give (with no
pending task, the planning activity closed it already and its status is the run's). Each
child run (``<execution id>-task-<task id>``, searchable by policy, project and
repository) runs the copy activity with the retry shape the plan carries: a destination
that is away is retried with exponential back-off until it is back (or the attempts run
out, when the task is recorded as failed); a final error is recorded at once.

The pending tasks come a page at a time (the plan carries the first page, ``NEXT_TASKS``
the next, both local activities), and a run that has started ``Plan.run_tasks`` child
runs, or that Temporal suggests to, waits for them at the end of its page and continues
as a new run of the same execution from the last task it started. So neither a plan's
payload nor a run's history grows with the number of artifacts. Runs recorded before
:data:`PAGED_TASKS` replay as they ran: the whole plan at once, one run.

Stopping an execution cancels its (latest) run: the cancellation reaches the child runs
and their copy activities (at the copy's next heartbeat); once they acknowledged it, the
tasks that never ran are marked ``stopped`` and the execution is closed as ``stopped``.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from typing import Final

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ChildWorkflowError, is_cancelled_exception
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from activities.search_attributes import search_values, typed_search_attributes
    from core.replication import (
        ARTIFACT_WORKFLOW,
        COPY_ARTIFACT,
        EXECUTION_WORKFLOW,
        FAIL_TASK,
        FINAL_ERROR,
        FINISH_EXECUTION,
        NEXT_TASKS,
        PLAN_EXECUTION,
        STOP_EXECUTION,
        ArtifactInput,
        Continued,
        ExecutionRequest,
        FailInput,
        FinishInput,
        Plan,
        TaskPage,
        TaskResult,
    )
    from workflows.execution_stop import closing_when_stopped
    from workflows.task_pages import Paging, run_pages

#: Bound of planning (listing a large source included).
PLAN_TIMEOUT: Final = timedelta(minutes=30)
#: The patch that plans in the execution's own workflow task (a local activity): a run
#: with nothing to copy is then one workflow task, not two plus an activity task.
PLAN_LOCALLY: Final = "replication-plan-locally"
#: The patch that pages the pending tasks and continues as new every ``Plan.run_tasks``.
PAGED_TASKS: Final = "replication-paged-tasks"
#: Bound of the bookkeeping activities.
STEP_TIMEOUT: Final = timedelta(minutes=2)
_STEP_RETRY: Final = RetryPolicy(maximum_interval=timedelta(seconds=30))


def _reason(exc: BaseException) -> str:
    cause = exc.cause if isinstance(exc, (ActivityError, ChildWorkflowError)) else None
    return str(cause or exc)[:2048]


@workflow.defn(name=EXECUTION_WORKFLOW)
class ReplicationExecutionWorkflow:
    """One execution of a policy."""

    @workflow.run
    async def run(self, request: ExecutionRequest) -> str:
        """Plan, copy every task (bounded concurrency), finish; the final status.

        Cancelled (the execution stopped): the running copies are cancelled and waited
        for (each stops at its next heartbeat), then the execution is closed as
        ``stopped`` and the run ends cancelled.
        """
        execution_id = request.execution_id or workflow.info().workflow_id
        return await closing_when_stopped(
            self._run(request, execution_id),
            STOP_EXECUTION,
            lambda reason: FinishInput(execution_id, reason),
            step_timeout=STEP_TIMEOUT,
            retry=_STEP_RETRY,
        )

    async def _run(self, request: ExecutionRequest, execution_id: str) -> str:
        if request.continued is not None:
            plan = request.continued.plan
            after = request.continued.after
            page = await _paging(execution_id, plan).next_page(after)
            return await self._run_pages(request, execution_id, plan, page)
        paged = workflow.patched(PAGED_TASKS)
        try:
            plan = await self._plan(replace(request, paged=True) if paged else request)
        except ActivityError as exc:
            if is_cancelled_exception(exc):
                raise
            return await self._finish(execution_id, _reason(exc))
        if workflow.cancellation_reason() is not None:
            # NOTE: stopped while planning: the plan completed, nothing is copied
            raise asyncio.CancelledError
        if plan.status is not None:
            # NOTE: nothing to run, planning closed the execution (a plan recorded
            # without a status, before it could, goes on to FINISH_EXECUTION as it did)
            return plan.status
        if not paged:
            return await self._run_all(request, execution_id, plan)
        first = TaskPage(plan.tasks, plan.names, plan.more)
        return await self._run_pages(request, execution_id, plan, first)

    async def _run_pages(
        self, request: ExecutionRequest, execution_id: str, plan: Plan, page: TaskPage
    ) -> str:
        """Run ``page`` and the pages after it; continue as new every ``plan.run_tasks``."""
        after = request.continued.after if request.continued is not None else 0

        async def one(found: TaskPage, index: int) -> None:
            names = found.names[index]
            await self._copy(request, execution_id, plan, found.tasks[index], names)

        resume = await run_pages(page, _paging(execution_id, plan), after=after, run_one=one)
        if resume is not None:
            workflow.continue_as_new(
                replace(
                    request,
                    execution_id=execution_id,
                    tasks=[],
                    continued=Continued(resume, replace(plan, tasks=[], names=[])),
                )
            )
        return await self._finish(execution_id, None)

    async def _run_all(self, request: ExecutionRequest, execution_id: str, plan: Plan) -> str:
        """Every task of the plan at once (runs recorded before :data:`PAGED_TASKS`)."""
        gate = asyncio.Semaphore(max(plan.concurrency, 1))

        async def one(task_id: int, project: str, repository: str) -> None:
            async with gate:
                await self._copy(request, execution_id, plan, task_id, (project, repository))

        # NOTE: with return_exceptions, a cancelled gather raises only once every task
        # settled (a copy in flight acknowledged the stop), never before
        outcomes = await asyncio.gather(
            *(
                one(task_id, names[0], names[1])
                for task_id, names in zip(plan.tasks, plan.names, strict=True)
            ),
            return_exceptions=True,
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return await self._finish(execution_id, None)

    @staticmethod
    async def _copy(
        request: ExecutionRequest,
        execution_id: str,
        plan: Plan,
        task_id: int,
        names: tuple[str, str],
    ) -> None:
        """One task's child run; a child run that failed is recorded on its task."""
        try:
            await workflow.execute_child_workflow(
                ARTIFACT_WORKFLOW,
                ArtifactInput(execution_id, request.policy_id, task_id, plan.retry),
                id=f"{execution_id}-task-{task_id}",
                search_attributes=typed_search_attributes(
                    search_values(policy=plan.policy, project=names[0], repository=names[1])
                ),
            )
        except ChildWorkflowError as exc:
            if is_cancelled_exception(exc):
                return  # stopped: the task says how far it got
            await workflow.execute_activity(
                FAIL_TASK,
                FailInput(task_id, _reason(exc)),
                start_to_close_timeout=STEP_TIMEOUT,
                retry_policy=_STEP_RETRY,
            )

    @staticmethod
    async def _plan(request: ExecutionRequest) -> Plan:
        """The execution's plan, made in this run's workflow task (a local activity).

        Histories recorded before :data:`PLAN_LOCALLY` replay their plan as an activity
        of its own, one workflow task and one activity task more per run.
        """
        retry = RetryPolicy(
            maximum_interval=timedelta(minutes=1),
            maximum_attempts=20,
            non_retryable_error_types=[FINAL_ERROR],
        )
        start = (
            workflow.execute_local_activity
            if workflow.patched(PLAN_LOCALLY)
            else workflow.execute_activity
        )
        plan: Plan = await start(
            PLAN_EXECUTION,
            request,
            result_type=Plan,
            start_to_close_timeout=PLAN_TIMEOUT,
            retry_policy=retry,
            # NOTE: a stop waits for the plan, so no task is stored after the close
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        return plan

    @staticmethod
    async def _finish(execution_id: str, reason: str | None) -> str:
        status: str = await workflow.execute_activity(
            FINISH_EXECUTION,
            FinishInput(execution_id, reason),
            result_type=str,
            start_to_close_timeout=STEP_TIMEOUT,
            retry_policy=_STEP_RETRY,
            # NOTE: a stop arriving while the run closes lets the close complete
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        return status


def _paging(execution_id: str, plan: Plan) -> Paging[TaskPage]:
    return Paging(
        execution_id, NEXT_TASKS, TaskPage, plan.concurrency, plan.page_tasks, plan.run_tasks
    )


@workflow.defn(name=ARTIFACT_WORKFLOW)
class ReplicationArtifactWorkflow:
    """One artifact of an execution: the copy, retried with back-off."""

    @workflow.run
    async def run(self, params: ArtifactInput) -> str:
        """The task's final status."""
        retry = params.retry
        try:
            result: TaskResult = await workflow.execute_activity(
                COPY_ARTIFACT,
                params,
                result_type=TaskResult,
                start_to_close_timeout=timedelta(seconds=retry.timeout_seconds),
                heartbeat_timeout=timedelta(seconds=retry.heartbeat_seconds),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=retry.initial_seconds),
                    backoff_coefficient=2.0,
                    maximum_interval=timedelta(seconds=retry.max_seconds),
                    maximum_attempts=retry.attempts,
                    non_retryable_error_types=[FINAL_ERROR],
                ),
                # NOTE: stopped, the child ends only once the copy acknowledged the
                # cancellation (at its next heartbeat): nothing is sent after the stop settles
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
        except ActivityError as exc:
            if is_cancelled_exception(exc):
                raise
            await workflow.execute_activity(
                FAIL_TASK,
                FailInput(params.task_id, _reason(exc)),
                start_to_close_timeout=STEP_TIMEOUT,
                retry_policy=_STEP_RETRY,
            )
            return "failed"
        return str(result.status)
