"""One workflow per outbox event; its id derives from the event id."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.contracts import HANDLE_EVENT, EventInput


@workflow.defn(name="ArtifactEventWorkflow")
class ArtifactEventWorkflow:
    """Delivers one data-plane event to its handlers."""

    @workflow.run
    async def run(self, params: EventInput) -> str:
        """Handle the event.

        Args:
            params: The event.

        Returns:
            The event's kind.
        """
        handled: str = await workflow.execute_activity(
            HANDLE_EVENT,
            params,
            result_type=str,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
        )
        return handled
