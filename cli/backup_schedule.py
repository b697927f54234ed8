"""The Temporal Schedule of whole-installation backups (``backup.every_seconds``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)

from activities.backup_contracts import BackupInput
from cli.schedules import ensure_schedule, pause_schedule, spread
from core.backup_settings import BackupSettings
from workflows.backup import BackupWorkflow

BACKUP_SCHEDULE_ID: Final = "moorage-backup"
#: After retention (1), GC (2), quota (3) and key rotation (4): see ``cli.schedules``.
BACKUP_SLOT: Final = 5


def backup_schedule(*, task_queue: str, every_seconds: int, keep_last: int) -> Schedule:
    """Back up the whole installation every interval, then prune to ``keep_last``."""
    every = timedelta(seconds=every_seconds)
    return Schedule(
        action=ScheduleActionStartWorkflow(
            BackupWorkflow.run,
            BackupInput(backup_id="", keep_last=keep_last),
            id=f"{BACKUP_SCHEDULE_ID}-run",
            task_queue=task_queue,
        ),
        spec=ScheduleSpec(
            intervals=[ScheduleIntervalSpec(every=every, offset=spread(BACKUP_SLOT, every))]
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=every),
    )


async def ensure_backup_schedule(
    client: Client,
    *,
    task_queue: str,
    settings: BackupSettings,
    schedule_id: str = BACKUP_SCHEDULE_ID,
) -> bool:
    """Make the backup schedule follow the settings (paused without a location or interval).

    Returns:
        True if this call created the schedule.
    """
    configured = settings.path is not None or settings.s3 is not None
    if settings.every_seconds <= 0 or not configured:
        await pause_schedule(
            client, schedule_id, "disabled in the settings (backup.every_seconds or location)"
        )
        return False
    schedule = backup_schedule(
        task_queue=task_queue, every_seconds=settings.every_seconds, keep_last=settings.keep_last
    )
    return await ensure_schedule(client, schedule_id, schedule)
