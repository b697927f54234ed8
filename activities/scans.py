"""Scan activities: the push subscriber, analyze, match, failures, candidates, re-match.

All are idempotent: analyze stores an inventory per image only where none is stored,
match replaces the artifact's one report, the subscriber starts runs under ids fixed by
the event (a repeat is a no-op). The long ones heartbeat while they read layers or match.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

import anyio.to_thread
from temporalio import activity
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities.heartbeats import keeps_heartbeating
from activities.search_attributes import search_values, typed_search_attributes
from core import events
from core.event_batches import EventBatch
from core.scan_jobs import (
    DELIVER_SCANS,
    SCAN_ANALYZE,
    SCAN_CANDIDATES,
    SCAN_FAIL,
    SCAN_MATCH,
    SCAN_REMATCH,
    SCAN_SBOM,
    SCAN_WORKFLOW,
    CandidatesInput,
    CandidatesPage,
    RematchInput,
    RematchPage,
    ScanFailure,
    push_workflow_id,
)
from core.scan_records import ScanTarget, is_external
from core.scan_referrers import SbomPublisher
from core.scan_service import ScanService

#: Least seconds between two heartbeats of one attempt.
HEARTBEAT_EVERY: Final = 2.0


def heartbeater() -> Callable[[], None]:
    """A function that heartbeats the current activity at most every few seconds."""
    last = [float("-inf")]

    def beat() -> None:
        now = time.monotonic()
        if now - last[0] >= HEARTBEAT_EVERY:
            last[0] = now
            activity.heartbeat()

    return beat


class ScanActivities:
    """The scan activities over one :class:`ScanService`."""

    def __init__(self, scans: ScanService, sboms: SbomPublisher) -> None:
        self._scans, self._sboms = scans, sboms

    @activity.defn(name=SCAN_ANALYZE)
    def scan_analyze_artifact(self, params: ScanTarget) -> bool:
        """Store the inventories the artifact lacks; ``False``: nothing to scan."""
        beat = heartbeater()
        beat()
        return self._scans.analyze(params, beat)

    @activity.defn(name=SCAN_MATCH)
    def scan_match_artifact(self, params: ScanTarget) -> str:
        """Replace the artifact's report; returns its status (``skipped``: gone)."""
        beat = heartbeater()
        beat()
        report = self._scans.match(params, beat)
        return "skipped" if report is None else str(report.status)

    @activity.defn(name=SCAN_SBOM)
    def scan_attach_sboms(self, params: ScanTarget) -> int:
        """Attach the CycloneDX and SPDX referrers the artifact's images lack."""
        beat = heartbeater()
        beat()
        return self._sboms.attach(params, beat)

    @activity.defn(name=SCAN_FAIL)
    def scan_record_failure(self, params: ScanFailure) -> None:
        """Record a failed report with the reason the scan could not finish."""
        self._scans.failed(params.target, params.reason)

    @activity.defn(name=SCAN_CANDIDATES)
    def scan_list_candidates(self, params: CandidatesInput) -> CandidatesPage:
        """The next page of scannable artifacts (read only)."""
        targets, after, more = self._scans.candidates(params.project_id, params.after, params.limit)
        return CandidatesPage(targets, after, more)

    @activity.defn(name=SCAN_REMATCH)
    def scan_rematch_reports(self, params: RematchInput) -> RematchPage:
        """Match the next page of reports again from their stored inventories."""
        beat = heartbeater()
        keys = self._scans.store.report_keys(params.after, params.limit)
        matched = 0
        for _, key in keys:
            beat()
            stored = self._scans.store.report(key.project_id, key.digest)
            if stored is not None and is_external(stored.scanner):
                continue  # NOTE: an external scanner's report has no inventory to match
            target = ScanTarget(key.project_id, "", key.repository, key.digest)
            if self._scans.match(target, beat) is not None:
                matched += 1
        next_after = keys[-1][0] if keys else params.after
        return RematchPage(next_after, matched, len(keys) == params.limit)

    def _push_targets(self, batch: EventBatch) -> list[tuple[str, ScanTarget]]:
        wanted: dict[int, bool] = {}
        targets: list[tuple[str, ScanTarget]] = []
        for event in batch.events:
            if event.kind != events.MANIFEST_PUSHED or event.project_id is None:
                continue
            if not event.repository or not event.digest:
                continue
            if event.project_id not in wanted:
                policy = self._scans.store.policy(event.project_id)
                wanted[event.project_id] = policy.scan_on_push
            if not wanted[event.project_id]:
                continue
            target = ScanTarget(
                event.project_id,
                event.repository.partition("/")[0],
                event.repository,
                event.digest,
            )
            if self._scans.is_scannable(target):
                targets.append((push_workflow_id(target, event.event_id, event.created_at), target))
        return targets

    @activity.defn(name=DELIVER_SCANS)
    @keeps_heartbeating
    async def deliver_events_scan(self, batch: EventBatch) -> int:
        """Start one scan run per pushed image (ids fixed by the event); return the size."""
        targets = await anyio.to_thread.run_sync(self._push_targets, batch)
        client = activity.client()
        queue = activity.info().task_queue
        for workflow_id, target in targets:
            search = search_values(
                project=target.project, repository=target.repository, digest=target.digest
            )
            try:
                await client.start_workflow(
                    SCAN_WORKFLOW,
                    target,
                    id=workflow_id,
                    task_queue=queue,
                    search_attributes=typed_search_attributes(search),
                )
            except WorkflowAlreadyStartedError:
                continue  # a retried batch: that run exists already
        return len(batch.events)
