"""The garbage-collection workflow: manifests, then blobs, then orphans; report saved."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from typing import Any

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


@workflow.defn(name="GarbageCollectionWorkflow")
class GarbageCollectionWorkflow:
    """One GC run; every step is an idempotent activity, so a killed worker resumes."""

    @workflow.run
    async def run(self, params: GcInput) -> dict[str, Any]:
        """Run the steps and record the report.

        Args:
            params: The run's options.

        Returns:
            The report: reviewed, deleted, kept, bytes_freed and listed items.
        """
        if not params.run_id:  # NOTE: scheduled runs are named by their workflow id
            params = dataclasses.replace(params, run_id=workflow.info().workflow_id)
        await self._record(GcRecordInput(params, "running"))
        steps = [GC_COLLECT_BLOBS, GC_SWEEP_ORPHANS]
        if params.delete_untagged:
            steps.insert(0, GC_COLLECT_MANIFESTS)
        report: dict[str, Any] = {"reviewed": 0, "deleted": 0, "kept": 0, "bytes_freed": 0}
        items: list[dict[str, Any]] = []
        try:
            for step in steps:
                result: GcStepResult = await workflow.execute_activity(
                    step,
                    params,
                    result_type=GcStepResult,
                    start_to_close_timeout=GC_START_TO_CLOSE,
                    heartbeat_timeout=GC_HEARTBEAT,
                    retry_policy=GC_RETRY_POLICY,
                )
                for key in ("reviewed", "deleted", "kept", "bytes_freed"):
                    report[key] = int(str(report[key])) + int(getattr(result, key))
                items.extend(result.items)
        except Exception:
            await self._record(GcRecordInput(params, "failed", json.dumps(report)))
            raise
        report["items"] = items[:1000]
        await self._record(GcRecordInput(params, "completed", json.dumps(report)))
        return report

    @staticmethod
    async def _record(params: GcRecordInput) -> None:
        await workflow.execute_activity(
            GC_RECORD_RUN,
            params,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=GC_RETRY_POLICY,
        )
