"""The worker keeps a Temporal Schedule of backups in step with ``backup.every_seconds``."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from temporalio.client import Client, ScheduleActionStartWorkflow

from cli.backup_schedule import ensure_backup_schedule
from core.backup_settings import BackupSettings

if TYPE_CHECKING:
    from tests.services.temporal import TemporalServer

pytestmark = pytest.mark.integration


async def test_the_backup_schedule_follows_the_settings(temporal_server: TemporalServer) -> None:
    client = await Client.connect(temporal_server.address)
    schedule_id = f"moorage-backup-{uuid.uuid4().hex[:8]}"
    settings = BackupSettings(path="/srv/backups", every_seconds=3600, keep_last=3)
    assert await ensure_backup_schedule(
        client, task_queue="q", settings=settings, schedule_id=schedule_id
    )
    handle = client.get_schedule_handle(schedule_id)
    try:
        described = await handle.describe()
        assert described.schedule.spec.intervals[0].every == timedelta(hours=1)
        action = described.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert action.workflow == "BackupWorkflow"
        assert not described.schedule.state.paused
        off = BackupSettings(path="/srv/backups", every_seconds=0)
        assert not await ensure_backup_schedule(
            client, task_queue="q", settings=off, schedule_id=schedule_id
        )
        assert (await handle.describe()).schedule.state.paused
    finally:
        await handle.delete()
