"""Garbage-collection activities.

Each step loops over batches, heartbeating, and is idempotent: a retried step finds the
queues where the killed attempt left them. Each batch adds its counts to the run's row in
its own transaction, and a step returns what the row holds for it: what every attempt of
the step did, so a retried step reports the deletions of the attempt that was killed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

from temporalio import activity

from activities.contracts import (
    GC_COLLECT_BLOBS,
    GC_COLLECT_MANIFESTS,
    GC_RECORD_RUN,
    GC_SWEEP_ORPHANS,
    GcInput,
    GcRecordInput,
    GcStepResult,
)
from core.control_records import GcRunRecord
from core.ports import BlobStore
from core.services import gc_progress
from core.services.changes import ChangeRecorder
from core.services.gc import GarbageCollector
from core.services.gc_report import GcReport
from core.services.run_progress import open_run
from core.settings import Settings
from storage.db.engine import Engines
from storage.db.metadata import SqlMetadata

#: Bound on the batches one activity attempt takes (it returns; the run is repeatable).
MAX_BATCHES: Final = 10_000
#: A dry run looks at this many rows per queue in one pass.
DRY_RUN_ROWS: Final = 10_000


def _result(report: GcReport) -> GcStepResult:
    return GcStepResult(
        report.reviewed, report.deleted, report.kept, report.bytes_freed, report.items
    )


class GcActivities:
    """The GC steps bound to real storage."""

    def __init__(self, settings: Settings, engines: Engines, store: BlobStore) -> None:
        self._settings = settings.control
        self._metadata = SqlMetadata(engines)
        changes = ChangeRecorder(settings.control.gc_review_delay_seconds)
        self._gc = GarbageCollector(self._metadata, store, changes)

    def _due(self, params: GcInput) -> datetime:
        delay = params.review_delay_seconds
        if delay is None:
            delay = self._settings.gc_review_delay_seconds
        return datetime.now(UTC) - timedelta(seconds=delay)

    @activity.defn(name=GC_RECORD_RUN)
    def gc_record_run(self, params: GcRecordInput) -> None:
        """Create the run's row (idempotent) and set its state and report.

        ``running`` keeps what the row already holds; a final state takes the report
        from the row's progress (``params.report_json`` only for runs without any, as
        dry runs); a finished run is left as recorded.
        """
        run, now = params.run, datetime.now(UTC)
        record = GcRunRecord(
            run.run_id,
            params.state,
            run.dry_run,
            run.delete_untagged,
            run.review_delay_seconds,
            None,
            now,
            None,
        )
        with self._metadata.write() as session:
            if params.state == "running":
                open_run(session, record, now)
            else:
                gc_progress.close_run(session, record, params.report_json, now)
            session.commit()

    def _step_result(self, run_id: str, step: str, attempt: GcReport) -> GcStepResult:
        """What the row holds for ``step`` (every attempt), else this attempt's report."""
        with self._metadata.read() as session:
            run = session.gc_run(run_id)
        stored: dict[str, Any] | None = None
        if run is not None:
            stored = gc_progress.step_report(run, step)
        if stored is None:
            return _result(attempt)
        return GcStepResult(
            stored["reviewed"],
            stored["deleted"],
            stored["kept"],
            stored["bytes_freed"],
            stored["items"],
        )

    @activity.defn(name=GC_COLLECT_MANIFESTS)
    def gc_collect_manifests(self, params: GcInput) -> GcStepResult:
        """Delete due, unreferenced manifests in batches."""
        if params.dry_run:
            return _result(self._gc.collect_manifests(self._due(params), DRY_RUN_ROWS, True))
        total = GcReport()
        for _ in range(MAX_BATCHES):
            batch = self._gc.collect_manifests(
                self._due(params), self._settings.gc_batch_size, False, run_id=params.run_id
            )
            total.add(batch)
            activity.heartbeat(total.reviewed)
            if batch.reviewed == 0:
                break
        return self._step_result(params.run_id, gc_progress.MANIFESTS, total)

    @activity.defn(name=GC_COLLECT_BLOBS)
    def gc_collect_blobs(self, params: GcInput) -> GcStepResult:
        """Finish tombstones left by a killed attempt, then review due blobs in batches."""
        if params.dry_run:
            return _result(self._gc.collect_blobs(self._due(params), DRY_RUN_ROWS, True))
        batch_size = self._settings.gc_batch_size
        self._finish_tombstones(batch_size)
        total = GcReport()
        for _ in range(MAX_BATCHES):
            batch = self._gc.collect_blobs(
                self._due(params), batch_size, False, run_id=params.run_id
            )
            total.add(batch)
            self._finish_tombstones(batch_size)
            activity.heartbeat(total.reviewed)
            if batch.reviewed == 0:
                break
        return self._step_result(params.run_id, gc_progress.BLOBS, total)

    def _finish_tombstones(self, batch_size: int) -> None:
        for _ in range(MAX_BATCHES):
            if self._gc.finish_tombstones(batch_size) == 0:
                return
            activity.heartbeat()

    @activity.defn(name=GC_SWEEP_ORPHANS)
    def gc_sweep_orphans(self, params: GcInput) -> GcStepResult:
        """Delete objects without rows once seen for the grace period (heartbeating)."""
        grace = timedelta(seconds=self._settings.gc_orphan_grace_seconds)
        if params.review_delay_seconds is not None:
            grace = min(grace, timedelta(seconds=params.review_delay_seconds))
        if params.dry_run:
            return _result(
                self._gc.sweep_orphans(datetime.now(UTC), grace, True, heartbeat=activity.heartbeat)
            )
        swept = self._gc.sweep_orphans(
            datetime.now(UTC), grace, False, run_id=params.run_id, heartbeat=activity.heartbeat
        )
        return self._step_result(params.run_id, gc_progress.ORPHANS, swept)
