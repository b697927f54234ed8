"""The quota reconciliation workflow."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.contracts import RECONCILE_QUOTAS, ReconcileInput


@workflow.defn(name="QuotaReconcileWorkflow")
class QuotaReconcileWorkflow:
    """Recompute usage of every project with a quota; report drift and warnings."""

    @workflow.run
    async def run(self, params: ReconcileInput) -> list[dict[str, Any]]:
        """Run the reconciliation.

        Args:
            params: The run's id (empty: the workflow id); with the workflow execution
                it keys the run's quota warnings, written once per project.

        Returns:
            One entry per project: usage, limits, warning flag and drift found.
        """
        result: list[dict[str, Any]] = await workflow.execute_activity(
            RECONCILE_QUOTAS,
            params,
            result_type=list[dict[str, Any]],
            start_to_close_timeout=timedelta(hours=2),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=2), maximum_attempts=10),
        )
        return result
