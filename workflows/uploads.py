"""Workflows about upload sessions."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.contracts import REAP_EXPIRED_UPLOADS, ReapUploadsInput, ReapUploadsResult

#: Retries for the reaper: it is idempotent, so retrying is always safe.
REAP_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=10,
)
REAP_START_TO_CLOSE = timedelta(minutes=30)
REAP_HEARTBEAT = timedelta(minutes=1)


@workflow.defn(name="ReapUploadsWorkflow")
class ReapUploadsWorkflow:
    """Remove upload sessions that expired, and their leftover data."""

    @workflow.run
    async def run(self, params: ReapUploadsInput) -> ReapUploadsResult:
        """Run the reaper activity once.

        Args:
            params: The age beyond which an upload session is expired.

        Returns:
            What the activity removed.
        """
        result: ReapUploadsResult = await workflow.execute_activity(
            REAP_EXPIRED_UPLOADS,
            params,
            result_type=ReapUploadsResult,
            start_to_close_timeout=REAP_START_TO_CLOSE,
            heartbeat_timeout=REAP_HEARTBEAT,
            retry_policy=REAP_RETRY_POLICY,
        )
        return result
