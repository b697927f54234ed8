"""Scheduled rotation of the registry token-signing key."""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey

with workflow.unsafe.imports_passed_through():
    from activities.contracts import (
        RETIRE_SIGNING_KEYS,
        ROTATE_SIGNING_KEY,
        KeyRotationInput,
        KeyRotationResult,
        RetireKeysInput,
        RotateKeyInput,
    )

#: Set by Temporal on workflows a schedule starts: the action's nominal time.
SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")
KEY_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=20,
)
KEY_START_TO_CLOSE = timedelta(minutes=2)
KEY_HEARTBEAT = timedelta(minutes=1)


@workflow.defn(name="KeyRotationWorkflow")
class KeyRotationWorkflow:
    """Add a new signing key, wait until tokens of the old one expired, retire it."""

    @workflow.run
    async def run(self, params: KeyRotationInput) -> KeyRotationResult:
        """Rotate once, keyed on the scheduled time, then retire after the grace period.

        Args:
            params: The grace period and (optionally) the time to key the rotation on.

        Returns:
            The new key's ``kid``, whether this run added it, and the retired keys.
        """
        scheduled = params.scheduled_at or _scheduled_time().isoformat()
        rotated: KeyRotationResult = await workflow.execute_activity(
            ROTATE_SIGNING_KEY,
            RotateKeyInput(scheduled_at=scheduled),
            result_type=KeyRotationResult,
            start_to_close_timeout=KEY_START_TO_CLOSE,
            heartbeat_timeout=KEY_HEARTBEAT,
            retry_policy=KEY_RETRY_POLICY,
        )
        await workflow.sleep(timedelta(seconds=params.grace_seconds))
        retired: list[str] = await workflow.execute_activity(
            RETIRE_SIGNING_KEYS,
            RetireKeysInput(grace_seconds=params.grace_seconds),
            result_type=list[str],
            start_to_close_timeout=KEY_START_TO_CLOSE,
            heartbeat_timeout=KEY_HEARTBEAT,
            retry_policy=KEY_RETRY_POLICY,
        )
        return KeyRotationResult(kid=rotated.kid, added=rotated.added, retired=retired)


def _scheduled_time() -> datetime:
    """The schedule's nominal time for this run; the run's start if no schedule started it."""
    scheduled = workflow.info().typed_search_attributes.get(SCHEDULED_START)
    return scheduled if scheduled is not None else workflow.info().start_time
