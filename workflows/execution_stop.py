"""How an execution's run ends when its execution is stopped (replication, preheat).

A stop cancels the run (``core.execution_stop``). :func:`closing_when_stopped` awaits the
run's body; when the body ends by that cancellation, it runs the kind's stop activity
(which closes the execution ``stopped``, with the reason the cancellation carried) and
lets the cancellation go on, so the run ends cancelled. Any other outcome passes as it is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import is_cancelled_exception


async def closing_when_stopped(
    body: Awaitable[str],
    stop_activity: str,
    stop_input: Callable[[str | None], object],
    *,
    step_timeout: timedelta,
    retry: RetryPolicy,
) -> str:
    """``body``'s result; if it was cancelled, ``stop_activity`` runs first, then it re-raises.

    ``stop_input`` makes the activity's argument from the cancellation's reason (``None``:
    none was given, the stop request's is kept).
    """
    try:
        return await body
    except BaseException as exc:
        if not is_cancelled_exception(exc):
            raise
        await workflow.execute_activity(
            stop_activity,
            stop_input(workflow.cancellation_reason() or None),
            result_type=str,
            start_to_close_timeout=step_timeout,
            retry_policy=retry,
        )
        raise
