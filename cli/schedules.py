"""Temporal Schedules that Moorage keeps in place."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Final

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)

from activities.contracts import (
    GcInput,
    KeyRotationInput,
    ReapUploadsInput,
    ReconcileInput,
    RetentionInput,
)
from workflows.gc import GarbageCollectionWorkflow
from workflows.keys import KeyRotationWorkflow
from workflows.quota import QuotaReconcileWorkflow
from workflows.retention import RetentionWorkflow
from workflows.uploads import ReapUploadsWorkflow

logger = logging.getLogger(__name__)

REAP_UPLOADS_SCHEDULE_ID: Final = "moorage-reap-uploads"
REAP_UPLOADS_EVERY: Final = timedelta(hours=1)


def reap_uploads_schedule(
    *, task_queue: str, older_than_seconds: int, every: timedelta = REAP_UPLOADS_EVERY
) -> Schedule:
    """The schedule that runs :class:`ReapUploadsWorkflow` periodically."""
    return Schedule(
        action=ScheduleActionStartWorkflow(
            ReapUploadsWorkflow.run,
            ReapUploadsInput(older_than_seconds=older_than_seconds),
            id=f"{REAP_UPLOADS_SCHEDULE_ID}-run",
            task_queue=task_queue,
            execution_timeout=every,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=every),
    )


async def ensure_schedule(client: Client, schedule_id: str, schedule: Schedule) -> bool:
    """Create the schedule unless one with that id exists; safe to call on every start.

    An existing schedule is left as it is (operators may have paused or edited it).

    Returns:
        True if this call created the schedule.
    """
    try:
        await client.create_schedule(schedule_id, schedule)
    except ScheduleAlreadyRunningError:
        logger.debug("schedule %s already exists", schedule_id)
        return False
    logger.info("created schedule %s", schedule_id)
    return True


async def ensure_reap_uploads_schedule(
    client: Client, *, task_queue: str, older_than_seconds: int
) -> bool:
    """Make sure the hourly upload reaper schedule exists.

    Returns:
        True if this call created it.
    """
    schedule = reap_uploads_schedule(task_queue=task_queue, older_than_seconds=older_than_seconds)
    return await ensure_schedule(client, REAP_UPLOADS_SCHEDULE_ID, schedule)


GC_SCHEDULE_ID: Final = "moorage-gc"
RETENTION_SCHEDULE_ID: Final = "moorage-retention"
QUOTA_SCHEDULE_ID: Final = "moorage-quota-reconcile"


async def _ensure_periodic(
    client: Client,
    schedule_id: str,
    run: Any,
    argument: object,
    *,
    task_queue: str,
    every_seconds: int,
) -> bool:
    """Make sure ``run(argument)`` is started every ``every_seconds`` (never when 0).

    Overlapping runs are skipped, and a run missed for longer than one interval is not
    caught up.

    Returns:
        True if this call created the schedule.
    """
    if every_seconds <= 0:
        return False
    every = timedelta(seconds=every_seconds)
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            run, argument, id=f"{schedule_id}-run", task_queue=task_queue
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=every),
    )
    return await ensure_schedule(client, schedule_id, schedule)


async def ensure_gc_schedule(
    client: Client, *, task_queue: str, every_seconds: int, delete_untagged: bool
) -> bool:
    """Make sure the periodic GC schedule exists (not when ``every_seconds`` is 0)."""
    argument = GcInput(run_id="", delete_untagged=delete_untagged)
    return await _ensure_periodic(
        client,
        GC_SCHEDULE_ID,
        GarbageCollectionWorkflow.run,
        argument,
        task_queue=task_queue,
        every_seconds=every_seconds,
    )


async def ensure_retention_schedule(client: Client, *, task_queue: str, every_seconds: int) -> bool:
    """Make sure retention runs periodically over every project with a policy."""
    return await _ensure_periodic(
        client,
        RETENTION_SCHEDULE_ID,
        RetentionWorkflow.run,
        RetentionInput(run_id=""),
        task_queue=task_queue,
        every_seconds=every_seconds,
    )


async def ensure_quota_schedule(client: Client, *, task_queue: str, every_seconds: int) -> bool:
    """Make sure quota reconciliation runs periodically."""
    return await _ensure_periodic(
        client,
        QUOTA_SCHEDULE_ID,
        QuotaReconcileWorkflow.run,
        ReconcileInput(),
        task_queue=task_queue,
        every_seconds=every_seconds,
    )


KEY_ROTATION_SCHEDULE_ID: Final = "moorage-key-rotation"


async def ensure_key_rotation_schedule(
    client: Client,
    *,
    task_queue: str,
    every_days: int,
    grace_seconds: int,
    schedule_id: str = KEY_ROTATION_SCHEDULE_ID,
) -> bool:
    """Make sure the signing key is rotated every ``every_days`` days (never when 0).

    Each run adds a key named after its scheduled time and retires the replaced key
    ``grace_seconds`` later, once every token it signed has expired.

    Returns:
        True if this call created the schedule.
    """
    return await _ensure_periodic(
        client,
        schedule_id,
        KeyRotationWorkflow.run,
        KeyRotationInput(grace_seconds=grace_seconds),
        task_queue=task_queue,
        every_seconds=every_days * 24 * 3600,
    )
