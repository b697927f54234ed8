"""The OSV import run (scheduled or on demand), then a re-match when the data changed."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from core.scan_jobs import (
        REMATCH_WORKFLOW,
        VULNDB_IMPORT,
        VULNDB_IMPORT_WORKFLOW,
        ImportInput,
        ImportOutcome,
        RematchInput,
    )


@workflow.defn(name=VULNDB_IMPORT_WORKFLOW)
class VulnDbImportWorkflow:
    """Imports every configured source; re-matches every report if anything changed."""

    @workflow.run
    async def run(self, params: ImportInput) -> ImportOutcome:
        """Returns what the import changed and which sources failed."""
        outcome: ImportOutcome = await workflow.execute_activity(
            VULNDB_IMPORT,
            params,
            result_type=ImportOutcome,
            start_to_close_timeout=timedelta(hours=4),
            retry_policy=RetryPolicy(maximum_attempts=3, maximum_interval=timedelta(minutes=5)),
        )
        if outcome.changed:
            await workflow.execute_child_workflow(
                REMATCH_WORKFLOW,
                RematchInput(),
                id=f"{workflow.info().workflow_id}-rematch",
            )
        return outcome
