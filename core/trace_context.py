"""Trace context carried across the outbox (W3C ``traceparent``), so one trace spans it.

A request that writes a run request into the outbox stores the current trace context
in the event's data (:func:`current_carrier`); the dispatcher starts the workflow inside
that context again (:func:`continued`), and Temporal's tracing interceptor carries it on
into the workflow and its activities. Without a configured tracer both are no-ops.

A request that was not sampled has no span (``api.tracing``); its event carries a
``traceparent`` that says so (the client's, or a new trace id), so the worker's
parent-based sampler leaves the workflow unsampled too rather than deciding afresh.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

from opentelemetry import context, propagate, trace

from core.request_context import CURRENT

#: The key of the carrier in an event's JSON data.
TRACE_KEY: Final = "trace"


def current_carrier() -> dict[str, str]:
    """The current trace context as headers (empty outside a traced request or span).

    The current OpenTelemetry span's, else the request's own span (``RequestContext.span``).
    """
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    if "traceparent" not in carrier:
        request = CURRENT.get()
        if request is not None and request.span is not None:
            own = trace.set_span_in_context(trace.NonRecordingSpan(request.span.span_context()))
            propagate.inject(carrier, context=own)
        elif request is not None and request.unsampled is not None:
            carrier["traceparent"] = request.unsampled or unsampled_traceparent()
    return carrier


def unsampled_traceparent() -> str:
    """A ``traceparent`` of a new trace that is not sampled (flags ``00``)."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00"


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
