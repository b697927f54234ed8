"""One CI promotion: gates, optional manual approval, copy by digest, audit.

The run's id is ``core.promotion.promotion_id`` (source digest + target), so a second
identical request finds the first run. The copy is one idempotent activity retried with
back-off: a worker killed mid-copy leaves the attempt to time out and a new attempt
finishes the same copy. The state is answered by the ``state`` query; approval is the
``approve`` signal, bounded by the request's timeout.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from core.promotion import (
        APPROVE_SIGNAL,
        COPY_IMAGE,
        EVALUATE_GATES,
        GATE_RECHECK_SECONDS,
        PROMOTION_REFUSED,
        PROMOTION_WORKFLOW,
        RECORD_OUTCOME,
        STATE_QUERY,
        CopyInput,
        CopyResult,
        Evaluation,
        GateResult,
        OutcomeInput,
        PromotionRequest,
        PromotionState,
        Status,
    )

#: Bound of one copy attempt (a killed worker's attempt is retried after it).
COPY_TIMEOUT: Final = timedelta(seconds=60)
STEP_TIMEOUT: Final = timedelta(minutes=2)
_RETRY: Final = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=30,
    non_retryable_error_types=[PROMOTION_REFUSED],
)


@workflow.defn(name=PROMOTION_WORKFLOW)
class PromotionWorkflow:
    """Promote one image (see the module docstring)."""

    def __init__(self) -> None:
        self._state = PromotionState(id="")
        self._approved_by: str | None = None

    @workflow.signal(name=APPROVE_SIGNAL)
    def approve(self, approver: str) -> None:
        """Approve a promotion that waits for it (ignored afterwards)."""
        if self._approved_by is None:
            self._approved_by = approver or "unknown"

    @workflow.query(name=STATE_QUERY)
    def state(self) -> PromotionState:
        return self._state

    @workflow.run
    async def run(self, request: PromotionRequest) -> PromotionState:
        self._state.id = request.id
        self._state.source = f"{request.source_repository}@{request.source_digest}"
        self._state.target = f"{request.target_repository}:{request.target_tag}"
        evaluation = await self._evaluate(request)
        waited = 0
        while not evaluation.passed and waited < request.gates.wait_seconds:
            # NOTE: a request without ``wait_seconds`` (0) never gets here, so the
            # command sequence of runs recorded before the field existed is unchanged
            self._state.status = Status.WAITING_GATES.value
            pause = min(GATE_RECHECK_SECONDS, request.gates.wait_seconds - waited)
            await workflow.sleep(timedelta(seconds=pause))
            waited += pause
            evaluation = await self._evaluate(request)
        self._state.status = Status.RUNNING.value
        if not evaluation.passed:
            return await self._finish(request, Status.REFUSED, evaluation.failures())
        if request.gates.approval:
            self._state.status = Status.WAITING_APPROVAL.value
            try:
                await workflow.wait_condition(
                    lambda: self._approved_by is not None,
                    timeout=timedelta(seconds=request.gates.approval_timeout_seconds),
                )
            except TimeoutError:
                self._state.gates.append(GateResult("approval", passed=False, reason="timed out"))
                return await self._finish(request, Status.REFUSED, "approval: timed out")
            self._state.gates.append(
                GateResult("approval", passed=True, reason=f"approved by {self._approved_by}")
            )
            self._state.status = Status.RUNNING.value
        try:
            decided_at = workflow.now().isoformat()
            self._state.copied = await workflow.execute_activity(
                COPY_IMAGE,
                CopyInput(request, list(self._state.gates), decided_at),
                result_type=CopyResult,
                start_to_close_timeout=COPY_TIMEOUT,
                heartbeat_timeout=None,
                retry_policy=_RETRY,
            )
        except ActivityError as exc:
            return await self._finish(request, Status.FAILED, str(exc.cause or exc)[:2048])
        return await self._finish(request, Status.PROMOTED, "")

    async def _evaluate(self, request: PromotionRequest) -> Evaluation:
        """The automatic gates' results now (kept in the state the query answers)."""
        evaluation: Evaluation = await workflow.execute_activity(
            EVALUATE_GATES,
            request,
            result_type=Evaluation,
            start_to_close_timeout=STEP_TIMEOUT,
            retry_policy=_RETRY,
        )
        self._state.gates = list(evaluation.results)
        return evaluation

    async def _finish(
        self, request: PromotionRequest, status: Status, reason: str
    ) -> PromotionState:
        self._state.status = status.value
        self._state.reason = reason
        await workflow.execute_activity(
            RECORD_OUTCOME,
            OutcomeInput(request, status.value, reason),
            start_to_close_timeout=STEP_TIMEOUT,
            retry_policy=_RETRY,
        )
        return self._state
