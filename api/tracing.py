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

A sampled request's span is not an SDK span object: the request keeps its ids and start
time, makes a non-recording span with its context current (what log lines, the outbox and
child spans read), and at the end hands one finished span to the provider's span
processors (batched and exported over OTLP by ``cli.tracing``), which is what the SDK's
span would hand them, for a fifth of the work.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.status import Status, StatusCode

from core.request_context import RequestContext

#: The tracer (instrumentation scope) name of request spans.
SCOPE_NAME: Final = "moorage.api"
_SERVER_ERROR: Final = 500
_TRACEPARENT: Final = b"traceparent"
_TRACESTATE: Final = b"tracestate"
#: Trace ids below which the ratio sampler samples: the low 64 bits, as the SDK's.
_ID_LIMIT: Final = (1 << 64) - 1
#: Flags of a new root trace: sampled, and its id random (W3C level 2, as the SDK sets).
_ROOT_FLAGS: Final = TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID)
_SAMPLED_CHILD: Final = TraceFlags(TraceFlags.SAMPLED)
_RANDOM_CHILD: Final = TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID)
_UNSET: Final = Status(StatusCode.UNSET)
_ERROR: Final = Status(StatusCode.ERROR)


class Span:
    """A sampled request's span, current until :meth:`finish`."""

    __slots__ = (
        "_context",
        "_method",
        "_name",
        "_parent",
        "_route",
        "_started",
        "_token",
        "_tracer",
    )

    def __init__(
        self,
        tracer: RequestTracer,
        name: str,
        method: str,
        route: str,
        span_context: SpanContext,
        parent: SpanContext | None,
        token: Any,
    ) -> None:
        self._tracer = tracer
        self._name = name
        self._method = method
        self._route = route
        self._context = span_context
        self._parent = parent
        self._token = token
        self._started = time.time_ns()

    @property
    def span_context(self) -> SpanContext:
        """The span's trace id, span id and flags."""
        return self._context

    def finish(self, status: int) -> None:
        """Record the status sent, make the previous context current, hand on the span."""
        ended = time.time_ns()
        context.detach(self._token)
        tracer = self._tracer
        tracer.processor.on_end(
            ReadableSpan(
                name=self._name,
                context=self._context,
                parent=self._parent,
                resource=tracer.resource,
                attributes={
                    "http.request.method": self._method,
                    "http.route": self._route,
                    "http.response.status_code": status,
                },
                kind=SpanKind.SERVER,
                status=_ERROR if status >= _SERVER_ERROR else _UNSET,
                start_time=self._started,
                end_time=ended,
                instrumentation_scope=tracer.scope,
            )
        )


class RequestTracer:
    """Decides whether each request is sampled and starts the spans of those that are."""

    def __init__(
        self,
        processor: SpanProcessor,
        resource: Resource,
        sample_ratio: float,
        *,
        bits: Callable[[int], int] = random.getrandbits,
    ) -> None:
        """Spans go to ``processor``; ``sample_ratio`` of new traces are sampled.

        ``bits(n)`` draws the ids (``n`` random bits; a test's can be predictable).
        """
        self.processor = processor
        self.resource = resource
        self.scope = InstrumentationScope(SCOPE_NAME)
        self._bound = round(min(max(sample_ratio, 0.0), 1.0) * (_ID_LIMIT + 1))
        self._bits = bits
        self._names: dict[tuple[str, str], str] = {}

    @classmethod
    def of_provider(cls, sample_ratio: float) -> RequestTracer | None:
        """The tracer of the process's SDK tracer provider (``None``: none is installed)."""
        tracer = trace.get_tracer(SCOPE_NAME)
        if not isinstance(tracer, SdkTracer):
            return None
        return cls(tracer.span_processor, tracer.resource, sample_ratio)

    def start(
        self,
        method: str,
        route: str,
        headers: Sequence[tuple[bytes, bytes]],
        request: RequestContext,
    ) -> Span | None:
        """Start the span of a sampled request and make it current (``None``: not sampled).

        A request that is not sampled notes in ``request`` the ``traceparent`` work it
        hands on must carry (``""``: a new, unsampled trace).
        """
        for key, _ in headers:
            if key == _TRACEPARENT:
                return self._continued(method, route, headers, request)
        return self._root(method, route, request)

    def _root(self, method: str, route: str, request: RequestContext) -> Span | None:
        """A request without a trace context: a new trace, sampled by the ratio."""
        trace_id = self._bits(128)
        if (trace_id & _ID_LIMIT) >= self._bound or not trace_id:
            request.unsampled = ""
            return None
        span_context = SpanContext(trace_id, self._span_id(), False, _ROOT_FLAGS)
        token = context.attach(trace.set_span_in_context(NonRecordingSpan(span_context)))
        return Span(self, self._name(method, route), method, route, span_context, None, token)

    def _continued(
        self,
        method: str,
        route: str,
        headers: Sequence[tuple[bytes, bytes]],
        request: RequestContext,
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
            return self._root(method, route, request)
        if not parent.trace_flags.sampled:
            request.unsampled = carrier["traceparent"]
            return None
        flags = _RANDOM_CHILD if parent.trace_flags.random_trace_id else _SAMPLED_CHILD
        span_context = SpanContext(
            parent.trace_id, self._span_id(), False, flags, trace_state=parent.trace_state
        )
        token = context.attach(trace.set_span_in_context(NonRecordingSpan(span_context), extracted))
        return Span(self, self._name(method, route), method, route, span_context, parent, token)

    def _span_id(self) -> int:
        span_id = self._bits(64)
        while not span_id:  # all zeros is the invalid id
            span_id = self._bits(64)
        return span_id

    def _name(self, method: str, route: str) -> str:
        name = self._names.get((method, route))
        if name is None:
            name = f"{method} {route}"
            if len(self._names) < 256:  # noqa: PLR2004 - route templates and methods: few
                self._names[(method, route)] = name
        return name
