"""The workflow of a scan requested through the served scanner API.

One activity pulls the requester's image, analyzes and matches it (heartbeating, run
again on another worker if its worker dies: it replaces only its own outcome). When it
keeps failing, the scan is recorded as failed with the reason, which the report
endpoint then answers.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from core.scan_jobs import ADAPTER_FAIL, ADAPTER_SCAN, ADAPTER_SCAN_WORKFLOW, AdapterFailure
    from workflows.scans import ANALYZE_TIMEOUT, HEARTBEAT_TIMEOUT, RETRY


@workflow.defn(name=ADAPTER_SCAN_WORKFLOW)
class ScannerApiScanWorkflow:
    """Runs one served scan (by id) to its stored outcome."""

    @workflow.run
    async def run(self, scan_id: str) -> str:
        """Returns the scan's status (``succeeded``, ``failed``; ``gone``: expired)."""
        try:
            status: str = await workflow.execute_activity(
                ADAPTER_SCAN,
                scan_id,
                result_type=str,
                start_to_close_timeout=ANALYZE_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=RETRY,
            )
        except ActivityError as exc:
            reason = str(exc.cause) if exc.cause is not None else str(exc)
            await workflow.execute_activity(
                ADAPTER_FAIL,
                AdapterFailure(scan_id, reason[:1024]),
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
            )
            return "failed"
        return status
