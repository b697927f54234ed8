"""Trace context carried across the outbox (W3C ``traceparent``), so one trace spans it.

A request that writes a run request into the outbox stores the current trace context
in the event's data (:func:`current_carrier`); the dispatcher starts the workflow inside
that context again (:func:`continued`), and Temporal's tracing interceptor carries it on
into the workflow and its activities. Without a configured tracer both are no-ops.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

from opentelemetry import context, propagate

#: The key of the carrier in an event's JSON data.
TRACE_KEY: Final = "trace"


def current_carrier() -> dict[str, str]:
    """The current trace context as headers (empty outside a recorded span)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def with_trace(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` plus the current trace context, if there is one."""
    carrier = current_carrier()
    return {**data, TRACE_KEY: carrier} if carrier else data


@contextmanager
def continued(carrier: Mapping[str, str] | None) -> Iterator[None]:
    """Run the block in the trace context ``carrier`` holds (as it is, without one)."""
    if not carrier:
        yield
        return
    token = context.attach(propagate.extract(dict(carrier)))
    try:
        yield
    finally:
        context.detach(token)
