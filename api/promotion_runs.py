"""Promotions as Temporal workflows, seen from the API: start, read, approve, list."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.search_attributes import (
    DIGEST,
    PROJECT,
    REPOSITORY,
    search_values,
    typed_search_attributes,
)
from adapters.temporal_client import connect_temporal
from api.backup_runs import TemporalUnavailableError
from core.errors import ConflictError, NotFoundError
from core.promotion import (
    APPROVE_SIGNAL,
    PROMOTION_WORKFLOW,
    STATE_QUERY,
    PromotionRequest,
    PromotionState,
    Status,
    promotion_memo,
)
from core.settings import TemporalSettings

#: Bound on one Temporal call.
CALL_TIMEOUT: Final = 10.0
#: Bound on asking a running promotion its state (a worker must answer).
QUERY_TIMEOUT: Final = 3.0
_PREFIX: Final = "promotion-"
#: Most promotions one list reads from visibility.
LIST_BOUND: Final = 1000
_STATES: Final = {
    WorkflowExecutionStatus.RUNNING: "running",
    WorkflowExecutionStatus.COMPLETED: "completed",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.CANCELED: "cancelled",
    WorkflowExecutionStatus.TERMINATED: "terminated",
    WorkflowExecutionStatus.TIMED_OUT: "timed_out",
}


#: Statuses of a promotion that has not ended (an approval sent now is kept for it).
_ACTIVE = frozenset(
    {Status.RUNNING.value, Status.WAITING_GATES.value, Status.WAITING_APPROVAL.value}
)


@dataclass(frozen=True, slots=True)
class PromotionSummary:
    """One promotion as a list shows it (its run's state, not the gates' outcome)."""

    id: str
    state: str
    started_at: datetime
    repository: str
    digest: str


class PromotionRuns:
    """Starts promotion workflows and reads them (client connected on first use)."""

    def __init__(self, settings: TemporalSettings) -> None:
        self._settings = settings
        self._client: Client | None = None

    async def _connect(self) -> Client:
        if self._client is None:
            self._client = await connect_temporal(self._settings)
        return self._client

    async def start(self, request: PromotionRequest) -> bool:
        """Start the promotion; ``False`` when one with its id exists (nothing started).

        The id policy refuses a second run with the same id even after the first ended,
        so the same request twice promotes once.
        """
        search = search_values(
            project=request.target_repository.partition("/")[0],
            repository=request.target_repository,
            digest=request.source_digest,
        )
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                client = await self._connect()
                await client.start_workflow(
                    PROMOTION_WORKFLOW,
                    request,
                    id=request.id,
                    task_queue=self._settings.task_queue,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    search_attributes=typed_search_attributes(search),
                    memo=promotion_memo(request),
                )
        except WorkflowAlreadyStartedError:
            return False
        except Exception as exc:
            self._client = None
            raise TemporalUnavailableError(f"Temporal is unreachable: {exc}") from exc
        return True

    async def read(self, promotion_id: str) -> PromotionState:
        """The promotion's state: its query while it runs, its result once it ended."""
        if not promotion_id.startswith(_PREFIX):
            raise NotFoundError(f"there is no promotion {promotion_id!r}", field="id")
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                client = await self._connect()
                handle = client.get_workflow_handle(promotion_id)
                described = await handle.describe()
                if described.status == WorkflowExecutionStatus.RUNNING:
                    return await self._query(handle, described)
                typed = client.get_workflow_handle(promotion_id, result_type=PromotionState)
                try:
                    done: PromotionState = await typed.result()
                except WorkflowFailureError as exc:
                    return PromotionState(
                        id=promotion_id, status=Status.FAILED.value, reason=str(exc.cause or exc)
                    )
                else:
                    return done
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise NotFoundError(f"there is no promotion {promotion_id!r}", field="id") from None
            self._client = None
            raise TemporalUnavailableError(f"Temporal is unreachable: {exc}") from exc
        except (OSError, TimeoutError) as exc:
            self._client = None
            raise TemporalUnavailableError(f"Temporal is unreachable: {exc}") from exc

    @staticmethod
    async def _query(
        handle: WorkflowHandle[Any, Any], described: WorkflowExecutionDescription
    ) -> PromotionState:
        """The running promotion's own state; while no worker answers, what its memo says."""
        try:
            async with asyncio.timeout(QUERY_TIMEOUT):
                state: PromotionState = await handle.query(STATE_QUERY, result_type=PromotionState)
        except (RPCError, TimeoutError):
            memo = await described.memo()
            return PromotionState(
                id=handle.id,
                source=str(memo.get("source", "")),
                target=str(memo.get("target", "")),
                reason="no worker answered; the promotion is pending",
            )
        return state

    async def approve(self, promotion_id: str, approver: str) -> PromotionState:
        """Send the approval signal to a promotion waiting for it."""
        state = await self.read(promotion_id)
        # NOTE: a running promotion may not have reached its approval step yet; the
        # workflow keeps the signal for it (and ignores it without an approval gate).
        if state.status not in _ACTIVE:
            raise ConflictError(f"promotion {promotion_id!r} is {state.status}, already ended")
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                client = await self._connect()
                await client.get_workflow_handle(promotion_id).signal(APPROVE_SIGNAL, approver)
        except (RPCError, OSError, TimeoutError) as exc:
            self._client = None
            raise TemporalUnavailableError(f"Temporal is unreachable: {exc}") from exc
        return state

    async def summaries(self, project: str | None) -> list[PromotionSummary]:
        """Promotions from Temporal's visibility (into ``project`` when given).

        At most :data:`LIST_BOUND` of them; visibility is eventually consistent (a
        promotion just started may be missing for a moment).
        """
        query = f'WorkflowType = "{PROMOTION_WORKFLOW}"'
        if project is not None:
            query += f' AND {PROJECT.name} = "{project}"'
        try:
            async with asyncio.timeout(CALL_TIMEOUT):
                client = await self._connect()
                return [
                    PromotionSummary(
                        id=execution.id,
                        state=_STATES.get(execution.status, "running")
                        if execution.status is not None
                        else "running",
                        started_at=execution.start_time,
                        repository=execution.typed_search_attributes.get(REPOSITORY) or "",
                        digest=execution.typed_search_attributes.get(DIGEST) or "",
                    )
                    async for execution in client.list_workflows(query, limit=LIST_BOUND)
                ]
        except (RPCError, OSError, TimeoutError) as exc:
            self._client = None
            raise TemporalUnavailableError(f"Temporal is unreachable: {exc}") from exc
