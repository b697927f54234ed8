"""Garbage-collection activities.

Each step loops over batches, heartbeating, and is idempotent: a retried step finds the
queues where the killed attempt left them. Each batch adds its counts and listed items to
the run's row in its own transaction (a dry run stores its findings there too), and a step
returns the counters the row holds for it: what every attempt of the step did, so a retried
step reports the deletions of the attempt that was killed. The items travel only through
the row, never through the workflow's history.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Final

from temporalio import activity

from activities.contracts import (
    GC_COLLECT_BLOBS,
    GC_COLLECT_MANIFESTS,
    GC_RECORD_RUN,
    GC_SWEEP_ORPHANS,
    GcInput,
    GcRecordInput,
    GcRecordResult,
    GcStepResult,
)
from core.control_records import GcRunRecord
from core.control_settings import ControlSettings
from core.ports import Clock, Metadata
from core.services import gc_progress
from core.services.gc import GarbageCollector
from core.services.gc_overlap import collect_blobs_overlapped
from core.services.gc_report import GcReport
from core.services.run_progress import FINISHED, open_run

#: Bound on the batches one activity attempt takes (it returns; the run is repeatable).
MAX_BATCHES: Final = 10_000
#: A dry run looks at this many rows per queue in one pass.
DRY_RUN_ROWS: Final = 10_000
#: Quarantined tombstones one attempt of the blob step tries again.
QUARANTINE_RETRIES: Final = 10_000


def _counters(report: dict[str, int]) -> GcStepResult:
    return GcStepResult(
        report["reviewed"],
        report["deleted"],
        report["kept"],
        report["bytes_freed"],
        quarantined=report["quarantined"],
    )


class GcActivities:
    """The GC steps, over the services the composition root (``cli.composition``) built.

    Args:
        collector: The garbage collector (its metadata store, blob store and change recorder).
        metadata: Where the run's row lives (progress, dry-run findings, final report).
        settings: Batch sizes, review delay and orphan grace.
        clock: The process's clock.
    """

    def __init__(
        self,
        collector: GarbageCollector,
        metadata: Metadata,
        settings: ControlSettings,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._metadata = metadata
        self._gc = collector
        self._clock = clock

    def _due(self, params: GcInput) -> datetime:
        delay = params.review_delay_seconds
        if delay is None:
            delay = self._settings.gc_review_delay_seconds
        return self._clock.now() - timedelta(seconds=delay)

    @activity.defn(name=GC_RECORD_RUN)
    def gc_record_run(self, params: GcRecordInput) -> GcRecordResult:
        """Create the run's row (idempotent) and set its state and report.

        ``running`` keeps what the row already holds; a final state takes the report
        from the row's progress (the workflow's counters only for a run without any);
        a finished run (``cancelled`` too) is left as recorded.

        Returns:
            The state the row now holds.
        """
        run, now = params.run, self._clock.now()
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
        reported = params.report
        if reported is None and params.report_json:
            reported = json.loads(params.report_json)
        with self._metadata.write() as session:
            if params.state == "running":
                recorded = open_run(session, record, now)
            else:
                recorded = gc_progress.close_run(session, record, reported, now)
            session.commit()
        return GcRecordResult(recorded.state)

    def _cancelled(self, run_id: str) -> bool:
        """Whether the run has finished already (cancelled): its steps then do nothing."""
        with self._metadata.read() as session:
            run = session.runs.get(run_id)
        return run is not None and run.state in FINISHED

    def _step_result(self, run_id: str, step: str) -> GcStepResult:
        """The counters the row holds for ``step`` (what every attempt of it did)."""
        with self._metadata.read() as session:
            run = session.runs.get(run_id)
        if run is None:
            return _counters(dict.fromkeys(gc_progress.COUNTERS, 0))
        return _counters(gc_progress.summary(run, step))

    def _dry(self, run_id: str, step: str, report: GcReport) -> GcStepResult:
        """Keep a dry run's findings in the run's row; return their counters."""
        with self._metadata.write() as session:
            gc_progress.set_dry_step(session, run_id, step, report)
            session.commit()
        return self._step_result(run_id, step)

    @activity.defn(name=GC_COLLECT_MANIFESTS)
    def gc_collect_manifests(self, params: GcInput) -> GcStepResult:
        """Delete due, unreferenced manifests in batches."""
        step = gc_progress.MANIFESTS
        if self._cancelled(params.run_id):
            return self._step_result(params.run_id, step)
        if params.dry_run:
            found = self._gc.collect_manifests(self._due(params), DRY_RUN_ROWS, True)
            return self._dry(params.run_id, step, found)
        for _ in range(MAX_BATCHES):
            batch = self._gc.collect_manifests(
                self._due(params), self._settings.gc_batch_size, False, run_id=params.run_id
            )
            activity.heartbeat(batch.reviewed)
            if batch.reviewed == 0:
                break
        return self._step_result(params.run_id, step)

    @activity.defn(name=GC_COLLECT_BLOBS)
    def gc_collect_blobs(self, params: GcInput) -> GcStepResult:
        """Finish tombstones left by earlier attempts and runs, then review due blobs.

        The deletion of tombstoned objects runs beside the decisions
        (``core.services.gc_overlap``), and what is left is finished at the end.

        Quarantined tombstones (objects a run could not delete) are tried once more per
        attempt; those that fail again stay quarantined and the run goes on.
        """
        step = gc_progress.BLOBS
        if self._cancelled(params.run_id):
            return self._step_result(params.run_id, step)
        if params.dry_run:
            found = self._gc.collect_blobs(self._due(params), DRY_RUN_ROWS, True)
            return self._dry(params.run_id, step, found)
        batch_size = self._settings.gc_batch_size
        self._gc.finish_tombstones(QUARANTINE_RETRIES, run_id=params.run_id, quarantined=True)
        self._finish_tombstones(batch_size, params.run_id)
        collect_blobs_overlapped(
            self._gc,
            self._due(params),
            batch_size,
            max_batches=MAX_BATCHES,
            run_id=params.run_id,
            heartbeat=activity.heartbeat,
        )
        return self._step_result(params.run_id, step)

    def _finish_tombstones(self, batch_size: int, run_id: str) -> None:
        for _ in range(MAX_BATCHES):
            if self._gc.finish_tombstones(batch_size, run_id=run_id) == 0:
                return
            activity.heartbeat()

    @activity.defn(name=GC_SWEEP_ORPHANS)
    def gc_sweep_orphans(self, params: GcInput) -> GcStepResult:
        """Delete objects without rows once seen for the grace period (heartbeating)."""
        step = gc_progress.ORPHANS
        if self._cancelled(params.run_id):
            return self._step_result(params.run_id, step)
        grace = timedelta(seconds=self._settings.gc_orphan_grace_seconds)
        if params.review_delay_seconds is not None:
            grace = min(grace, timedelta(seconds=params.review_delay_seconds))
        now = self._clock.now()
        if params.dry_run:
            found = self._gc.sweep_orphans(now, grace, True, heartbeat=activity.heartbeat)
            return self._dry(params.run_id, step, found)
        self._gc.sweep_orphans(
            now, grace, False, run_id=params.run_id, heartbeat=activity.heartbeat
        )
        return self._step_result(params.run_id, step)
