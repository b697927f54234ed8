"""Scan workflows: one artifact, many artifacts with bounded concurrency, re-match.

``ScanArtifactWorkflow`` first asks whether the artifact's project hands its scans to an
external scanner (a registration or ``scanner_api.delegate``); if so that one activity is
the scan.
Otherwise it analyzes (layers into inventories, heartbeating), matches
(inventories into the report) and attaches the SBOM referrers of each image. All three
activities are idempotent, so an attempt lost with its worker is simply run again: the
artifact ends with exactly one report and one SBOM of each kind per image. When an
activity keeps failing, the run records a failed report with the reason and completes.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Final

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from activities.search_attributes import search_values, typed_search_attributes
    from core.scan_jobs import (
        DELEGATE_PATCH,
        NOT_DELEGATED,
        REMATCH_WORKFLOW,
        SCAN_ANALYZE,
        SCAN_CANDIDATES,
        SCAN_DELEGATE,
        SCAN_FAIL,
        SCAN_MANY_WORKFLOW,
        SCAN_MATCH,
        SCAN_REMATCH,
        SCAN_SBOM,
        SCAN_WORKFLOW,
        CandidatesInput,
        CandidatesPage,
        RematchInput,
        RematchPage,
        ScanFailure,
        ScanManyInput,
    )
    from core.scan_records import ScanTarget

#: A scan attempt that stops heartbeating this long is retried on another worker.
HEARTBEAT_TIMEOUT: Final = timedelta(seconds=20)
ANALYZE_TIMEOUT: Final = timedelta(hours=2)
MATCH_TIMEOUT: Final = timedelta(minutes=30)
RETRY: Final = RetryPolicy(maximum_attempts=5, maximum_interval=timedelta(minutes=1))
#: Candidates read per page, and pages per run before it continues as new.
PAGE: Final = 100
PAGES_PER_RUN: Final = 20


@workflow.defn(name=SCAN_WORKFLOW)
class ScanArtifactWorkflow:
    """Scans one artifact (each platform of an index) into its report."""

    @workflow.run
    async def run(self, target: ScanTarget) -> str:
        """Returns the report's status, or ``skipped`` (not stored or not scannable)."""
        try:
            if workflow.patched(DELEGATE_PATCH):
                delegated: str = await workflow.execute_activity(
                    SCAN_DELEGATE,
                    target,
                    result_type=str,
                    start_to_close_timeout=ANALYZE_TIMEOUT,
                    heartbeat_timeout=HEARTBEAT_TIMEOUT,
                    retry_policy=RETRY,
                )
                if delegated != NOT_DELEGATED:
                    return delegated
            scanned: bool = await workflow.execute_activity(
                SCAN_ANALYZE,
                target,
                result_type=bool,
                start_to_close_timeout=ANALYZE_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=RETRY,
            )
            if not scanned:
                return "skipped"
            status: str = await workflow.execute_activity(
                SCAN_MATCH,
                target,
                result_type=str,
                start_to_close_timeout=MATCH_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=RETRY,
            )
            await workflow.execute_activity(
                SCAN_SBOM,
                target,
                result_type=int,
                start_to_close_timeout=MATCH_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=RETRY,
            )
        except ActivityError as exc:
            reason = str(exc.cause) if exc.cause is not None else str(exc)
            await workflow.execute_activity(
                SCAN_FAIL,
                ScanFailure(target, reason[:1024]),
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
            )
            return "failed"
        return status


@workflow.defn(name=SCAN_MANY_WORKFLOW)
class ScanManyWorkflow:
    """Scans every scannable artifact of a project (or all), ``concurrency`` at a time."""

    @workflow.run  # noqa: RET503 - continue_as_new raises, it never returns
    async def run(self, params: ScanManyInput) -> int:
        """Returns how many artifact scans it started (over continued runs)."""
        after, started = params.after, params.started
        running: list[asyncio.Task[object]] = []
        prefix = workflow.info().workflow_id
        for _ in range(PAGES_PER_RUN):
            page: CandidatesPage = await workflow.execute_activity(
                SCAN_CANDIDATES,
                CandidatesInput(params.project_id, after, PAGE),
                result_type=CandidatesPage,
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
            )
            for target in page.targets:
                while len(running) >= max(params.concurrency, 1):
                    done, _ = await workflow.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    running = [t for t in running if t not in done]
                running.append(asyncio.create_task(_scan_child(prefix, target)))
                started += 1
            after = page.next_after
            if not page.more:
                await _drain(running)
                return started
        await _drain(running)
        workflow.continue_as_new(
            ScanManyInput(params.project_id, params.concurrency, after, started)
        )


async def _drain(running: list[asyncio.Task[object]]) -> None:
    if running:
        await workflow.wait(running)


async def _scan_child(prefix: str, target: ScanTarget) -> object:
    search = search_values(
        project=target.project, repository=target.repository, digest=target.digest
    )
    try:
        return await workflow.execute_child_workflow(
            SCAN_WORKFLOW,
            target,
            id=f"{prefix}-{target.project_id}-{target.digest}",
            search_attributes=typed_search_attributes(search),
        )
    except ChildWorkflowError:
        return "failed"


@workflow.defn(name=REMATCH_WORKFLOW)
class ScanRematchWorkflow:
    """Matches every stored report's inventories again (no layer is read)."""

    @workflow.run  # noqa: RET503 - continue_as_new raises, it never returns
    async def run(self, params: RematchInput) -> int:
        """Returns how many reports were matched again (over continued runs)."""
        after, matched = params.after, params.matched
        for _ in range(PAGES_PER_RUN):
            page: RematchPage = await workflow.execute_activity(
                SCAN_REMATCH,
                RematchInput(after, params.limit),
                result_type=RematchPage,
                start_to_close_timeout=MATCH_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
            )
            after, matched = page.next_after, matched + page.matched
            if not page.more:
                return matched
        workflow.continue_as_new(RematchInput(after, params.limit, matched))
