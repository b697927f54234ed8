"""Temporal Schedules of policies run on a cron expression (replication, preheat).

One schedule per policy, ``moorage-<kind>-<policy id>``: present with the policy's cron
expression while the policy is enabled and ``scheduled``, gone otherwise. Each run it
starts is an execution whose id is the run's workflow id (the schedule appends the time
to ``<kind>-<policy id>-scheduled``); overlapping runs are skipped. ``sync`` and
``remove`` are idempotent: repeating one leaves the same schedule (or none).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
)
from temporalio.service import RPCError, RPCStatusCode

from activities.search_attributes import typed_search_attributes
from adapters.temporal_client import connect_temporal
from core.settings import TemporalSettings

#: Bound on one schedule call.
CALL_TIMEOUT = 10.0


class ScheduledPolicy(Protocol):
    """What a schedule is made from: the policy's id, switch and cron expression."""

    @property
    def id(self) -> int: ...
    @property
    def enabled(self) -> bool: ...
    @property
    def cron(self) -> str | None: ...


P = TypeVar("P", bound=ScheduledPolicy)


class PolicySchedules(Generic[P]):
    """Keeps one kind's schedules in line with its policies; connects on first use.

    ``workflow`` is the execution workflow's name, ``scheduled`` says whether a policy's
    trigger is the schedule, ``request`` builds the workflow's argument of a scheduled
    run and ``search`` its search attributes.
    """

    def __init__(
        self,
        settings: TemporalSettings,
        kind: str,
        workflow: str,
        *,
        scheduled: Callable[[P], bool],
        request: Callable[[P], Any],
        search: Callable[[P], dict[str, str]],
    ) -> None:
        self._settings = settings
        self._kind = kind
        self._workflow = workflow
        self._scheduled = scheduled
        self._request = request
        self._search = search
        self._client: Client | None = None

    def schedule_id(self, policy_id: int) -> str:
        return f"moorage-{self._kind}-{policy_id}"

    async def _connect(self) -> Client:
        if self._client is None:
            self._client = await connect_temporal(self._settings)
        return self._client

    async def sync(self, policy: P) -> None:
        """Create or update the policy's schedule, or remove it if it should not run."""
        if not policy.enabled or not self._scheduled(policy) or not policy.cron:
            await self.remove(policy.id)
            return
        schedule = Schedule(
            action=ScheduleActionStartWorkflow(
                self._workflow,
                self._request(policy),
                id=f"{self._kind}-{policy.id}-scheduled",
                task_queue=self._settings.task_queue,
                typed_search_attributes=typed_search_attributes(self._search(policy)),
            ),
            spec=ScheduleSpec(cron_expressions=[policy.cron]),
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        )
        async with asyncio.timeout(CALL_TIMEOUT):
            client = await self._connect()
            try:
                await client.create_schedule(self.schedule_id(policy.id), schedule)
            except ScheduleAlreadyRunningError:
                handle = client.get_schedule_handle(self.schedule_id(policy.id))
                await handle.update(lambda _: ScheduleUpdate(schedule=schedule))

    async def follow(self, before: P | None, after: P | None) -> None:
        """Follow a policy's change (``None``: created or deleted).

        Temporal is asked only when the policy is or was scheduled, so manual and event
        policies are managed while Temporal is away.
        """
        was = before is not None and self._scheduled(before)
        if after is not None and (was or self._scheduled(after)):
            await self.sync(after)
        elif after is None and before is not None and was:
            await self.remove(before.id)

    async def remove(self, policy_id: int) -> None:
        """Delete the policy's schedule (none: nothing to do)."""
        async with asyncio.timeout(CALL_TIMEOUT):
            client = await self._connect()
            try:
                await client.get_schedule_handle(self.schedule_id(policy_id)).delete()
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
