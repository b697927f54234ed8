"""The garbage-collection workflow: manifests, then blobs, then orphans; report saved."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from typing import Any, Final

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
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

GC_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=2),
    maximum_attempts=20,
)
GC_START_TO_CLOSE = timedelta(hours=6)
GC_HEARTBEAT = timedelta(seconds=30)


#: Patch: the run's items travel only through its row; the history holds counters.
SUMMARY_PATCH: Final = "gc-summary-payloads"
#: Run states after which the steps have nothing to do (a run cancelled before it began).
FINISHED_STATES: Final = frozenset({"completed", "failed", "cancelled"})
COUNTERS: Final = ("reviewed", "deleted", "kept", "bytes_freed")


@workflow.defn(name="GarbageCollectionWorkflow")
class GarbageCollectionWorkflow:
    """One GC run; every step is an idempotent activity, so a killed worker resumes."""

    @workflow.run
    async def run(self, params: GcInput) -> dict[str, Any]:
        """Run the steps and record the report.

        The report's items are written to the run's row by the steps (read them through
        the management API); the history carries only counters.

        Args:
            params: The run's options.

        Returns:
            The counters: reviewed, deleted, kept, bytes_freed and quarantined.
        """
        if not params.run_id:  # NOTE: scheduled runs are named by their workflow id
            params = dataclasses.replace(params, run_id=workflow.info().workflow_id)
        steps = [GC_COLLECT_BLOBS, GC_SWEEP_ORPHANS]
        if params.delete_untagged:
            steps.insert(0, GC_COLLECT_MANIFESTS)
        if not workflow.patched(SUMMARY_PATCH):
            return await self._run_with_items(params, steps)
        opened: GcRecordResult = await self._record(GcRecordInput(params, "running"))
        report = dict.fromkeys((*COUNTERS, "quarantined"), 0)
        if opened.state in FINISHED_STATES:
            return report
        try:
            for step in steps:
                result = await self._step(step, params)
                for key in report:
                    report[key] += int(getattr(result, key))
        except Exception:
            await self._record(GcRecordInput(params, "failed", report=dict(report)))
            raise
        await self._record(GcRecordInput(params, "completed", report=dict(report)))
        return report

    async def _run_with_items(self, params: GcInput, steps: list[str]) -> dict[str, Any]:
        """The run as histories recorded before :data:`SUMMARY_PATCH` replay it."""
        await self._record(GcRecordInput(params, "running"))
        report: dict[str, Any] = dict.fromkeys(COUNTERS, 0)
        items: list[dict[str, Any]] = []
        try:
            for step in steps:
                result = await self._step(step, params)
                for key in COUNTERS:
                    report[key] = int(str(report[key])) + int(getattr(result, key))
                items.extend(result.items)
        except Exception:
            await self._record(GcRecordInput(params, "failed", json.dumps(report)))
            raise
        report["items"] = items[:1000]
        await self._record(GcRecordInput(params, "completed", json.dumps(report)))
        return report

    @staticmethod
    async def _step(step: str, params: GcInput) -> GcStepResult:
        result: GcStepResult = await workflow.execute_activity(
            step,
            params,
            result_type=GcStepResult,
            start_to_close_timeout=GC_START_TO_CLOSE,
            heartbeat_timeout=GC_HEARTBEAT,
            retry_policy=GC_RETRY_POLICY,
        )
        return result

    @staticmethod
    async def _record(params: GcRecordInput) -> GcRecordResult:
        result: GcRecordResult | None = await workflow.execute_activity(
            GC_RECORD_RUN,
            params,
            result_type=GcRecordResult | None,  # type: ignore[arg-type]
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=GC_RETRY_POLICY,
        )
        return result or GcRecordResult(params.state)
