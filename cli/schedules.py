"""Temporal Schedules that Moorage keeps in place."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Final

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

from activities.contracts import ReapUploadsInput
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
