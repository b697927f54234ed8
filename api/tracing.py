"""The server span of an HTTP request (OpenTelemetry), current while the request runs.

A span is named by the route template (``GET /v2/{name}/manifests/{reference}``), never
by the raw path; a request continues the trace its client sent (``traceparent``). The span
is current while the request runs, so what the request writes (an outbox event carries
the trace context, ``core.trace_context``) and logs (trace and span ids) belong to it.

Sampling is decided once, when the request starts, the way the process's sampler
(``cli.tracing``: parent-based, by trace id ratio) would: a client's sampled
``traceparent`` is followed, an unsampled one is not, and a request without one is
sampled when its new trace id falls under the ratio. A request that is not sampled costs
one look through its headers and, without a ``traceparent``, one random number: no span,
no context change, no ids. It only notes its decision in its request context, so work it
hands on through the outbox stays unsampled downstream (``core.trace_context``).

A sampled request's span is not an SDK span object but one plain record
(:class:`~core.request_spans.RequestSpan`): the request keeps it in its request context
(``RequestContext.span``: what log lines and the outbox read) and at the end hands it to
the process's sink (``adapters.otlp_request_spans``: batched and exported over OTLP in a
thread of the process), with what the SDK's span would have exported. No OpenTelemetry
object is made for it unless something asks for one. Only where a request may start
SDK spans of its own (the management API's Temporal calls: ``current=True``) is the span
also made current in OpenTelemetry's context, as a non-recording span, so those become
its children; on the ``/v2`` path that costs about 12 us of server CPU a request.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from contextvars import Token
from typing import Final

from opentelemetry import context, propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, TraceFlags

from core.request_context import RequestContext
from core.request_spans import RequestSpan, RequestSpanSink

#: The tracer (instrumentation scope) name of request spans.
SCOPE_NAME: Final = "moorage.api"
_TRACEPARENT: Final = b"traceparent"
_TRACESTATE: Final = b"tracestate"
#: Trace ids below which the ratio sampler samples: the low 64 bits, as the SDK's.
_ID_LIMIT: Final = (1 << 64) - 1
#: Flags of a new root trace: sampled, and its id random (W3C level 2, as the SDK sets).
_ROOT_FLAGS: Final = TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID
_SAMPLED_CHILD: Final = TraceFlags.SAMPLED
_RANDOM_CHILD: Final = TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID


class Span(RequestSpan):
    """A sampled request's span, open until :meth:`finish` hands it to the sink."""

    __slots__ = ("_sink", "_token")

    def __init__(
        self,
        sink: RequestSpanSink,
        method: str,
        route: str,
        trace_id: int,
        span_id: int,
        flags: int,
        parent_span_id: int,
        trace_state: str,
    ) -> None:
        RequestSpan.__init__(
            self,
            method,
            route,
            trace_id,
            span_id,
            parent_span_id,
            parent_span_id != 0,  # a parent is always a client's (remote)
            trace_state,
            time.time_ns(),
            0,
            0,
            flags,
        )
        self._sink = sink
        self._token: Token[Context] | None = None

    def make_current(self, parent: Context | None) -> None:
        """Make the span current in OpenTelemetry's context (as a non-recording span)."""
        span = NonRecordingSpan(self.span_context())
        self._token = context.attach(trace.set_span_in_context(span, parent))

    def finish(self, status: int) -> None:
        """Record the status sent, make the previous context current, hand on the span."""
        self.end_ns = time.time_ns()
        self.status = status
        if self._token is not None:
            context.detach(self._token)
        self._sink.add(self)


class RequestTracer:
    """Decides whether each request is sampled and starts the spans of those that are."""

    def __init__(
        self,
        sink: RequestSpanSink,
        sample_ratio: float,
        *,
        bits: Callable[[int], int] = random.getrandbits,
    ) -> None:
        """Spans go to ``sink``; ``sample_ratio`` of new traces are sampled.

        ``bits(n)`` draws the ids (``n`` random bits; a test's can be predictable).
        """
        self.sink = sink
        self._bound = round(min(max(sample_ratio, 0.0), 1.0) * (_ID_LIMIT + 1))
        self._bits = bits

    def close(self) -> None:
        """Send the spans the sink still holds (the app shuts down)."""
        self.sink.close()

    def start(
        self,
        method: str,
        route: str,
        headers: Sequence[tuple[bytes, bytes]],
        request: RequestContext,
        *,
        current: bool = True,
    ) -> Span | None:
        """Start the span of a sampled request (``None``: not sampled).

        The span's ids go into ``request.span``; with ``current`` the span is also made
        current in OpenTelemetry's context until :meth:`Span.finish`, so SDK spans
        started meanwhile are its children. A request that is not sampled notes in
        ``request`` the ``traceparent`` work it hands on must carry (``""``: a new,
        unsampled trace).
        """
        for key, _ in headers:
            if key == _TRACEPARENT:
                return self._continued(method, route, headers, request, current)
        return self._root(method, route, request, current)

    def _root(self, method: str, route: str, request: RequestContext, current: bool) -> Span | None:
        """A request without a trace context: a new trace, sampled by the ratio."""
        trace_id = self._bits(128)
        if (trace_id & _ID_LIMIT) >= self._bound or not trace_id:
            request.unsampled = ""
            return None
        span = Span(self.sink, method, route, trace_id, self._span_id(), _ROOT_FLAGS, 0, "")
        request.span = span
        if current:
            span.make_current(None)
        return span

    def _continued(
        self,
        method: str,
        route: str,
        headers: Sequence[tuple[bytes, bytes]],
        request: RequestContext,
        current: bool,
    ) -> Span | None:
        """A request with a ``traceparent``: sampled as its client's trace is."""
        carrier = {
            bytes(key).decode("latin-1"): bytes(value).decode("latin-1")
            for key, value in headers
            if key in (_TRACEPARENT, _TRACESTATE)
        }
        extracted = propagate.extract(carrier)
        parent = trace.get_current_span(extracted).get_span_context()
        if not parent.is_valid:  # not a W3C trace context: a new trace, as without one
            return self._root(method, route, request, current)
        if not parent.trace_flags.sampled:
            request.unsampled = carrier["traceparent"]
            return None
        flags = _RANDOM_CHILD if parent.trace_flags.random_trace_id else _SAMPLED_CHILD
        state = parent.trace_state.to_header() if parent.trace_state else ""
        span = Span(
            self.sink, method, route, parent.trace_id, self._span_id(), flags, parent.span_id, state
        )
        request.span = span
        if current:
            span.make_current(extracted)
        return span

    def _span_id(self) -> int:
        span_id = self._bits(64)
        while not span_id:  # all zeros is the invalid id
            span_id = self._bits(64)
        return span_id
