"""Backup, verify, restore and prune workflows: each step an idempotent activity."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Final, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.backup_contracts import (
        BACKUP_BEGIN,
        BACKUP_COPY_BLOBS,
        BACKUP_FINISH,
        BACKUP_PRUNE,
        BACKUP_RELEASE,
        BACKUP_VERIFY,
        CORRUPT,
        NOT_FOUND,
        REFUSED,
        RESTORE_BLOBS,
        RESTORE_PLAN,
        RESTORE_ROWS,
        BackupInput,
        BackupResult,
        BackupStepResult,
        PruneInput,
        PruneResult,
        RestoreInput,
        RestorePlan,
        RestoreResult,
        RestoreStepInput,
        VerifyInput,
        VerifyResult,
    )

_T = TypeVar("_T")

RETRY: Final = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=20,
    non_retryable_error_types=[REFUSED, NOT_FOUND, CORRUPT],
)
#: Bound on one long step (copying every blob); it heartbeats after each blob.
LONG: Final = timedelta(hours=12)
HEARTBEAT: Final = timedelta(seconds=30)
SHORT: Final = timedelta(minutes=30)


async def _step(name: str, arg: object, result_type: type[_T], *, long: bool = False) -> _T:
    result: _T = await workflow.execute_activity(
        name,
        arg,
        result_type=result_type,
        start_to_close_timeout=LONG if long else SHORT,
        heartbeat_timeout=HEARTBEAT if long else None,
        retry_policy=RETRY,
    )
    return result


@workflow.defn(name="BackupWorkflow")
class BackupWorkflow:
    """Snapshot, copy the blobs, write the manifest; the GC hold is released either way."""

    @workflow.run
    async def run(self, params: BackupInput) -> BackupResult:
        if not params.backup_id:  # NOTE: a scheduled run is named by its start time
            stamp = workflow.now().strftime("%Y%m%d-%H%M%S")
            params = dataclasses.replace(params, backup_id=f"{stamp}-scheduled")
        try:
            await _step(BACKUP_BEGIN, params, BackupStepResult)
            copied = await _step(BACKUP_COPY_BLOBS, params, BackupStepResult, long=True)
            done = await _step(BACKUP_FINISH, params, BackupResult)
        except Exception:
            await _step(BACKUP_RELEASE, params, type(None))
            raise
        if params.keep_last > 0:
            await _step(BACKUP_PRUNE, PruneInput(params.keep_last), PruneResult, long=True)
        return dataclasses.replace(done, copied=copied.copied)


@workflow.defn(name="VerifyBackupWorkflow")
class VerifyBackupWorkflow:
    """Check a backup's snapshot, every blob and the audit chain."""

    @workflow.run
    async def run(self, params: VerifyInput) -> VerifyResult:
        return await _step(BACKUP_VERIFY, params, VerifyResult, long=True)


@workflow.defn(name="RestoreBackupWorkflow")
class RestoreBackupWorkflow:
    """Plan (checks, fresh storage), copy and verify the blobs, then load the rows."""

    @workflow.run
    async def run(self, params: RestoreInput) -> RestoreResult:
        plan = await _step(RESTORE_PLAN, params, RestorePlan)
        step = RestoreStepInput(params.backup_id, params.project, plan.tenants)
        copied = await _step(RESTORE_BLOBS, step, BackupStepResult, long=True)
        loaded = await _step(RESTORE_ROWS, step, RestoreResult, long=True)
        return dataclasses.replace(loaded, blobs_copied=copied.copied)


@workflow.defn(name="PruneBackupsWorkflow")
class PruneBackupsWorkflow:
    """Keep the newest backups, delete the rest and the blobs only they held."""

    @workflow.run
    async def run(self, params: PruneInput) -> PruneResult:
        return await _step(BACKUP_PRUNE, params, PruneResult, long=True)


BACKUP_WORKFLOWS: Final[list[type]] = [
    BackupWorkflow,
    VerifyBackupWorkflow,
    RestoreBackupWorkflow,
    PruneBackupsWorkflow,
]
