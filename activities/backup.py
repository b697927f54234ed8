"""Backup, verify, restore and prune activities over ``core.backup_service``.

Every activity is idempotent (see the service's guarantees) and the long ones heartbeat
after each blob: a worker killed mid-copy is replaced by a retry that skips what is
already copied. Permanent failures (a refused restore, a corrupt or missing backup) are
non-retryable ``ApplicationError``s typed ``BackupRefused``, ``BackupNotFound`` or
``BackupCorrupt``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

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
from core.backup import BackupNotFoundError
from core.backup_crypto import BackupCorruptError
from core.backup_service import BackupService
from core.errors import ConflictError

_T = TypeVar("_T")


@contextmanager
def _permanent() -> Iterator[None]:
    """Turn the service's permanent failures into non-retryable errors."""
    try:
        yield
    except BackupNotFoundError as exc:
        raise ApplicationError(str(exc), type=NOT_FOUND, non_retryable=True) from exc
    except BackupCorruptError as exc:
        raise ApplicationError(str(exc), type=CORRUPT, non_retryable=True) from exc
    except ConflictError as exc:
        raise ApplicationError(str(exc), type=REFUSED, non_retryable=True) from exc


def _beat(done: int) -> None:
    activity.heartbeat(done)


def _tenants(params: RestoreStepInput) -> dict[int, str]:
    return {int(key): value for key, value in params.tenants.items()}


class BackupActivities:
    """The steps, over the :class:`BackupService` the composition root built."""

    def __init__(self, service: BackupService) -> None:
        self._service = service

    def _run(self, work: Callable[[], _T]) -> _T:
        with _permanent():
            return work()

    @activity.defn(name=BACKUP_BEGIN)
    def backup_begin(self, params: BackupInput) -> BackupStepResult:
        """Take the GC hold and write the snapshot (once; a retry reuses it)."""
        facts = self._run(lambda: self._service.begin(params.backup_id, params.project))
        return BackupStepResult(blobs=len(facts.blobs), bytes=facts.size)

    @activity.defn(name=BACKUP_COPY_BLOBS)
    def backup_copy_blobs(self, params: BackupInput) -> BackupStepResult:
        """Copy the snapshot's blobs not yet in the location, heartbeating per blob."""
        done = self._run(lambda: self._service.copy_blobs(params.backup_id, _beat))
        return BackupStepResult(
            done.copied + done.skipped, done.copied, done.skipped, done.bytes_copied
        )

    @activity.defn(name=BACKUP_FINISH)
    def backup_finish(self, params: BackupInput) -> BackupResult:
        """Write the backup's manifest and release the hold."""
        manifest = self._run(lambda: self._service.finish(params.backup_id, params.project))
        return BackupResult(
            manifest.id,
            len(manifest.snapshot.blobs),
            0,
            manifest.total_bytes,
            self._service.location.describe(),
        )

    @activity.defn(name=BACKUP_RELEASE)
    def backup_release(self, params: BackupInput) -> None:
        """Release the hold of a backup that failed."""
        self._service.release(params.backup_id)

    @activity.defn(name=BACKUP_VERIFY)
    def backup_verify(self, params: VerifyInput) -> VerifyResult:
        """Check every blob's digest and size, the snapshot and the audit chain."""
        outcome = self._run(lambda: self._service.verify(params.backup_id, _beat))
        return VerifyResult(
            outcome.ok, outcome.blobs_checked, outcome.bytes_checked, outcome.problems
        )

    @activity.defn(name=BACKUP_PRUNE)
    def backup_prune(self, params: PruneInput) -> PruneResult:
        """Remove backups beyond the newest ``keep_last`` and the blobs only they held."""
        removed, deleted = self._run(lambda: self._service.prune(params.keep_last))
        return PruneResult(removed, deleted)

    @activity.defn(name=RESTORE_PLAN)
    def restore_plan(self, params: RestoreInput) -> RestorePlan:
        """Check the target and give each restored project fresh storage."""
        tenants = self._run(lambda: self._service.plan_restore(params.backup_id, params.project))
        return RestorePlan({str(key): value for key, value in tenants.items()})

    @activity.defn(name=RESTORE_BLOBS)
    def restore_blobs(self, params: RestoreStepInput) -> BackupStepResult:
        """Copy and verify the restored projects' blobs into their storage."""
        done = self._run(
            lambda: self._service.restore_blobs(
                params.backup_id, params.project, _tenants(params), _beat
            )
        )
        return BackupStepResult(
            done.copied + done.skipped, done.copied, done.skipped, done.bytes_copied
        )

    @activity.defn(name=RESTORE_ROWS)
    def restore_rows(self, params: RestoreStepInput) -> RestoreResult:
        """Load the snapshot's rows in one transaction."""
        rows = self._run(
            lambda: self._service.restore_rows(params.backup_id, params.project, _tenants(params))
        )
        return RestoreResult(params.backup_id, params.project, 0, rows)
