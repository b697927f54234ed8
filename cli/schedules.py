"""Temporal Schedules that Moorage keeps in step with its settings.

The worker calls the ``ensure_*`` functions on every start: a missing schedule is
created, an existing one takes the configured interval and arguments, and a job turned
off in the settings (interval 0) has its schedule paused. The daily jobs start at
different times of the day (:func:`spread`).
"""

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
    ScheduleUpdate,
)
from temporalio.service import RPCError, RPCStatusCode

from activities.contracts import (
    GcInput,
    KeyRotationInput,
    ReapUploadsInput,
    ReconcileInput,
    RetentionInput,
)
from core.scan_jobs import ImportInput
from workflows.gc import GarbageCollectionWorkflow
from workflows.keys import KeyRotationWorkflow
from workflows.quota import QuotaReconcileWorkflow
from workflows.retention import RetentionWorkflow
from workflows.uploads import ReapUploadsWorkflow
from workflows.vulndb import VulnDbImportWorkflow

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
    """Create the schedule, or make the existing one follow ``schedule``; safe on every start.

    An existing schedule gets ``schedule``'s spec, action and policy, and is unpaused
    when ``schedule`` is not paused: settings changed in configuration reach it at the
    next worker start (an operator's edits in the Temporal UI last until then).

    Returns:
        True if this call created the schedule.
    """
    try:
        await client.create_schedule(schedule_id, schedule)
    except ScheduleAlreadyRunningError:
        handle = client.get_schedule_handle(schedule_id)
        await handle.update(lambda _: ScheduleUpdate(schedule=schedule))
        described = await handle.describe()
        if described.schedule.state.paused and not schedule.state.paused:
            await handle.unpause(note=FOLLOWS_SETTINGS)
        logger.info("schedule %s follows the settings", schedule_id)
        return False
    logger.info("created schedule %s", schedule_id)
    return True


async def pause_schedule(client: Client, schedule_id: str, note: str) -> bool:
    """Pause the schedule if it exists and runs (its job was turned off in the settings).

    Returns:
        True if this call paused it.
    """
    handle = client.get_schedule_handle(schedule_id)
    try:
        described = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    if described.schedule.state.paused:
        return False
    await handle.pause(note=note)
    logger.info("paused schedule %s: %s", schedule_id, note)
    return True


def spread(slot: int, every: timedelta) -> timedelta:
    """Offset of the ``slot``-th daily job into its interval, so jobs do not start together.

    Intervals count from the Unix epoch, so every daily job would start at 00:00 UTC:
    slot ``n`` starts ``n`` hours later for intervals of a day or more, ``n``/24 of the
    interval later for shorter ones (always less than the interval).
    """
    if every >= timedelta(days=1):
        return timedelta(hours=slot)
    return every * slot / 24


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
KEY_ROTATION_SCHEDULE_ID: Final = "moorage-key-rotation"
VULNDB_SCHEDULE_ID: Final = "moorage-vulndb-import"
#: Slots of the daily jobs (see :func:`spread`): retention first (it makes garbage), then
#: GC, quota reconciliation (after GC freed space) and key rotation.
RETENTION_SLOT, GC_SLOT, QUOTA_SLOT, KEY_ROTATION_SLOT, VULNDB_SLOT = 1, 2, 3, 4, 5
#: Note on a schedule that follows the settings again.
FOLLOWS_SETTINGS: Final = "enabled in the settings"


async def _ensure_periodic(
    client: Client,
    schedule_id: str,
    run: Any,
    argument: object,
    *,
    task_queue: str,
    every_seconds: int,
    slot: int,
    setting: str,
) -> bool:
    """Make ``run(argument)`` start every ``every_seconds``; 0 pauses an existing schedule.

    The interval is offset by :func:`spread` of ``slot``. Overlapping runs are skipped,
    and a run missed for longer than one interval is not caught up. ``setting`` names
    the setting that turned the job off, in the paused schedule's note.

    Returns:
        True if this call created the schedule.
    """
    if every_seconds <= 0:
        await pause_schedule(client, schedule_id, f"disabled in the settings ({setting} = 0)")
        return False
    every = timedelta(seconds=every_seconds)
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            run, argument, id=f"{schedule_id}-run", task_queue=task_queue
        ),
        spec=ScheduleSpec(
            intervals=[ScheduleIntervalSpec(every=every, offset=spread(slot, every))]
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=every),
    )
    return await ensure_schedule(client, schedule_id, schedule)


async def ensure_gc_schedule(
    client: Client,
    *,
    task_queue: str,
    every_seconds: int,
    delete_untagged: bool,
    schedule_id: str = GC_SCHEDULE_ID,
) -> bool:
    """Make the periodic GC schedule follow the settings (paused when ``every_seconds`` is 0)."""
    argument = GcInput(run_id="", delete_untagged=delete_untagged)
    return await _ensure_periodic(
        client,
        schedule_id,
        GarbageCollectionWorkflow.run,
        argument,
        task_queue=task_queue,
        every_seconds=every_seconds,
        slot=GC_SLOT,
        setting="control.gc_every_seconds",
    )


async def ensure_retention_schedule(
    client: Client,
    *,
    task_queue: str,
    every_seconds: int,
    schedule_id: str = RETENTION_SCHEDULE_ID,
) -> bool:
    """Make retention run periodically over every project with a policy (0: paused)."""
    return await _ensure_periodic(
        client,
        schedule_id,
        RetentionWorkflow.run,
        RetentionInput(run_id=""),
        task_queue=task_queue,
        every_seconds=every_seconds,
        slot=RETENTION_SLOT,
        setting="control.policy_every_seconds",
    )


async def ensure_quota_schedule(
    client: Client,
    *,
    task_queue: str,
    every_seconds: int,
    schedule_id: str = QUOTA_SCHEDULE_ID,
) -> bool:
    """Make quota reconciliation run periodically (0: paused)."""
    return await _ensure_periodic(
        client,
        schedule_id,
        QuotaReconcileWorkflow.run,
        ReconcileInput(),
        task_queue=task_queue,
        every_seconds=every_seconds,
        slot=QUOTA_SLOT,
        setting="control.policy_every_seconds",
    )


async def ensure_key_rotation_schedule(
    client: Client,
    *,
    task_queue: str,
    every_days: int,
    grace_seconds: int,
    schedule_id: str = KEY_ROTATION_SCHEDULE_ID,
) -> bool:
    """Make the signing key rotate every ``every_days`` days (0: paused).

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
        slot=KEY_ROTATION_SLOT,
        setting="auth.key_rotation_days",
    )


async def ensure_vulndb_schedule(
    client: Client,
    *,
    task_queue: str,
    every_seconds: int,
    schedule_id: str = VULNDB_SCHEDULE_ID,
) -> bool:
    """Import the configured OSV sources periodically, then re-match (0 or none: paused)."""
    return await _ensure_periodic(
        client,
        schedule_id,
        VulnDbImportWorkflow.run,
        ImportInput(),
        task_queue=task_queue,
        every_seconds=every_seconds,
        slot=VULNDB_SLOT,
        setting="scan.vulndb.import_every_seconds",
    )
