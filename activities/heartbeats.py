"""Heartbeats sent for an activity while it runs, so that a dead worker is noticed soon.

Temporal learns that the worker running an attempt died only from a timeout. Without a
heartbeat timeout that is the start-to-close timeout (minutes for an event batch), and a
subscriber's later batches wait that long. With one, an attempt that stops heartbeating
is retried on another worker within that timeout. :func:`keeps_heartbeating` makes an
activity heartbeat at a third of its attempt's heartbeat timeout for as long as its
function runs (nothing when the attempt has none): it says "this worker is alive", not
"this work makes progress", so the start-to-close timeout still bounds a hung attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar, cast

from temporalio import activity

F = TypeVar("F", bound=Callable[..., Any])

#: Heartbeats per heartbeat timeout.
BEATS_PER_TIMEOUT = 3


def heartbeat_interval() -> float | None:
    """Seconds between heartbeats of the current attempt (``None``: it has no heartbeat timeout)."""
    timeout = activity.info().heartbeat_timeout
    if timeout is None or timeout.total_seconds() <= 0:
        return None
    return timeout.total_seconds() / BEATS_PER_TIMEOUT


@contextlib.asynccontextmanager
async def heartbeating(every: float) -> AsyncIterator[None]:
    """Heartbeat the current (async) activity now and every ``every`` seconds meanwhile."""

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(every)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.contextmanager
def heartbeating_thread(every: float) -> Iterator[None]:
    """Heartbeat the current (threaded) activity every ``every`` seconds from a helper thread."""
    stop = threading.Event()
    context = contextvars.copy_context()

    def beat() -> None:
        while not stop.wait(every):
            context.run(activity.heartbeat)

    helper = threading.Thread(target=beat, name="activity-heartbeat", daemon=True)
    helper.start()
    try:
        yield
    finally:
        stop.set()
        helper.join(timeout=every)


def keeps_heartbeating(fn: F) -> F:
    """Make the activity function ``fn`` (async or threaded) heartbeat while it runs."""
    if inspect.iscoroutinefunction(fn):
        run = cast("Callable[..., Awaitable[Any]]", fn)

        @functools.wraps(fn)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            every = heartbeat_interval()
            if every is None:
                return await run(*args, **kwargs)
            async with heartbeating(every):
                return await run(*args, **kwargs)

        return cast("F", run_async)

    @functools.wraps(fn)
    def run_sync(*args: Any, **kwargs: Any) -> Any:
        every = heartbeat_interval()
        if every is None:
            return fn(*args, **kwargs)
        with heartbeating_thread(every):
            return fn(*args, **kwargs)

    return cast("F", run_sync)
