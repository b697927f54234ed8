"""The retention workflow: one idempotent activity per run."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.contracts import RUN_RETENTION, RetentionInput


@workflow.defn(name="RetentionWorkflow")
class RetentionWorkflow:
    """Apply a project's retention rules (or every project's, when scheduled)."""

    @workflow.run
    async def run(self, params: RetentionInput) -> dict[str, Any]:
        """Run retention.

        Args:
            params: The run's id, project and dry-run flag.

        Returns:
            How many artifacts were retained and deleted.
        """
        if not params.run_id:  # NOTE: scheduled runs are named by their workflow id
            params = dataclasses.replace(params, run_id=workflow.info().workflow_id)
        result: dict[str, Any] = await workflow.execute_activity(
            RUN_RETENTION,
            params,
            result_type=dict[str, Any],
            start_to_close_timeout=timedelta(hours=6),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=2), maximum_attempts=10),
        )
        return result
