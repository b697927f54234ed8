"""One workflow per webhook target: sends its deliveries in order, waits out retries.

Why one long-lived run per target (``webhook-target-<policy id>-<key>``) and not a run per
event or per batch: a burst of events becomes rows in the delivery table and one wake
signal per batch, never a run per event; a failing target waits on its own durable timer
(retry state lives in the delivery rows), so it blocks neither the event fan-out's
batches nor other targets. The run ends when nothing is pending (the next batch starts it
again with signal-with-start) and continues as new after a bounded number of rounds.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Final

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from core.webhook_events import SEND_WEBHOOKS, TARGET_WORKFLOW, WAKE_SIGNAL, SendResult

#: Rounds of sending before the run continues as new (bounds its history).
ROUNDS: Final = 200
#: A sending round's bounds: it heartbeats every few seconds.
ROUND_TIMEOUT: Final = timedelta(minutes=30)
HEARTBEAT_TIMEOUT: Final = timedelta(seconds=10)


@workflow.defn(name=TARGET_WORKFLOW)
class WebhookTargetWorkflow:
    """Sends one policy's pending deliveries until none is left."""

    def __init__(self) -> None:
        self._woken = False

    @workflow.signal(name=WAKE_SIGNAL)
    def wake(self) -> None:
        """New deliveries are pending (or the target was resumed)."""
        self._woken = True

    @workflow.run  # noqa: RET503 - continue_as_new raises, it never returns
    async def run(self, policy_id: int) -> int:
        """Send rounds until nothing is pending; return how many deliveries finished."""
        finished = 0
        for _ in range(ROUNDS):
            self._woken = False
            result: SendResult = await workflow.execute_activity(
                SEND_WEBHOOKS,
                policy_id,
                result_type=SendResult,
                start_to_close_timeout=ROUND_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
            )
            finished += result.sent
            if result.more:
                continue
            if result.wait_seconds is None:
                if self._woken:
                    continue
                return finished
            wait = timedelta(seconds=max(result.wait_seconds, 0.01))
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: self._woken, timeout=wait)
        workflow.continue_as_new(policy_id)
