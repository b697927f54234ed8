"""Event fan-out: one run per subscriber batch (``cli.outbox`` forms and starts them).

``ArtifactEventWorkflow`` is the former one-run-per-event workflow; nothing starts it any
more, it stays registered so runs started before an upgrade finish (and replay).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.contracts import HANDLE_EVENT, EventInput
    from core.event_batches import BATCH_WORKFLOW, EventBatchHead

#: A subscriber that keeps failing is retried at most this far apart; its later batches
#: wait (order per repository), other subscribers go on.
MAX_RETRY_INTERVAL = timedelta(minutes=1)


@workflow.defn(name=BATCH_WORKFLOW)
class EventBatchWorkflow:
    """Delivers one batch of events to its subscriber's activity."""

    @workflow.run
    async def run(self, batch: RawValue) -> int:
        """Run the subscriber's activity on the batch until it succeeds.

        The input is a ``core.event_batches.EventBatch``; the workflow reads only its head
        (:class:`~core.event_batches.EventBatchHead`) and passes the payload on to the
        activity as it came, so the events are decoded once, in the activity, and a large
        batch never keeps a workflow task busy.

        An attempt heartbeats (``activities.heartbeats``), so one whose worker died is
        retried after ``heartbeat_seconds``, not after the 5-minute start-to-close
        timeout that still bounds a hung attempt.

        Args:
            batch: The subscriber, its activity and the events, in outbox order.

        Returns:
            How many events the subscriber handled.
        """
        head = workflow.payload_converter().from_payload(batch.payload, EventBatchHead)
        heartbeat = head.heartbeat_seconds
        handled: int = await workflow.execute_activity(
            head.activity,
            batch,
            result_type=int,
            start_to_close_timeout=timedelta(minutes=5),
            heartbeat_timeout=timedelta(seconds=heartbeat) if heartbeat > 0 else None,
            retry_policy=RetryPolicy(maximum_interval=MAX_RETRY_INTERVAL),
        )
        return handled


@workflow.defn(name="ArtifactEventWorkflow")
class ArtifactEventWorkflow:
    """Former per-event run, kept only so runs started before the fan-out finish."""

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
