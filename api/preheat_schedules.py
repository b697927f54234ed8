"""Temporal Schedules of scheduled preheat policies.

One schedule per policy, ``moorage-preheat-<policy id>``: present with the policy's cron
expression while the policy is enabled and ``scheduled``, gone otherwise. Each run it
starts is an execution whose id is the run's workflow id (the schedule appends the
time); overlapping runs are skipped. Created and updated as replication's schedules are
(``api.replication_schedules``).
"""

from __future__ import annotations

import asyncio

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

from activities.search_attributes import search_values, typed_search_attributes
from adapters.temporal_client import connect_temporal
from api.replication_schedules import CALL_TIMEOUT
from core.preheat import EXECUTION_WORKFLOW, ExecutionRequest, Policy, TriggerKind
from core.settings import TemporalSettings


def schedule_id(policy_id: int) -> str:
    return f"moorage-preheat-{policy_id}"


class TemporalPreheatSchedules:
    """Keeps the schedules in line with the policies; connects on first use."""

    def __init__(self, settings: TemporalSettings) -> None:
        self._settings = settings
        self._client: Client | None = None

    async def _connect(self) -> Client:
        if self._client is None:
            self._client = await connect_temporal(self._settings)
        return self._client

    async def sync(self, policy: Policy) -> None:
        """Create or update the policy's schedule, or remove it if it should not run."""
        if not policy.enabled or policy.trigger is not TriggerKind.SCHEDULED or not policy.cron:
            await self.remove(policy.id)
            return
        schedule = Schedule(
            action=ScheduleActionStartWorkflow(
                EXECUTION_WORKFLOW,
                ExecutionRequest("", policy.id, TriggerKind.SCHEDULED),
                id=f"preheat-{policy.id}-scheduled",
                task_queue=self._settings.task_queue,
                typed_search_attributes=typed_search_attributes(
                    search_values(policy=policy.name, project=policy.project)
                ),
            ),
            spec=ScheduleSpec(cron_expressions=[policy.cron]),
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        )
        async with asyncio.timeout(CALL_TIMEOUT):
            client = await self._connect()
            try:
                await client.create_schedule(schedule_id(policy.id), schedule)
            except ScheduleAlreadyRunningError:
                handle = client.get_schedule_handle(schedule_id(policy.id))
                await handle.update(lambda _: ScheduleUpdate(schedule=schedule))

    async def remove(self, policy_id: int) -> None:
        """Delete the policy's schedule (none: nothing to do)."""
        async with asyncio.timeout(CALL_TIMEOUT):
            client = await self._connect()
            try:
                await client.get_schedule_handle(schedule_id(policy_id)).delete()
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
