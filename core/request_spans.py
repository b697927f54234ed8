"""The server span of a sampled request, and where such spans go once ended.

``api.tracing`` decides which requests are sampled and, at the end of a sampled one,
hands its :class:`RequestSpan` to a :class:`RequestSpanSink`. The sink the processes use
(``adapters.otlp_request_spans``) batches the spans and exports them over OTLP/HTTP in
the same process, off the request: a span costs the request one ``add``.

A :class:`RequestSpan` holds what the OpenTelemetry SDK would have exported for the
request's span: its name is ``"<method> <route>"``, its kind ``SERVER``, its attributes
``http.request.method``, ``http.route`` and ``http.response.status_code``, its status
``ERROR`` for a 5xx answer and ``UNSET`` otherwise.
"""

from __future__ import annotations

from typing import Protocol

from opentelemetry.trace import SpanContext, TraceFlags, TraceState

#: Answers from this status up mark the span as failed.
SERVER_ERROR = 500


class RequestSpan:
    """A sampled request's server span: its ids while the request runs, all of it once ended.

    Made when a sampled request starts (``api.tracing``): the request keeps it in its
    context (``RequestContext.span``), where log lines, access lines and the outbox read
    its ids; when the request ends its ``end_ns`` and ``status`` are set and it goes to
    the sink. It is a plain record, not an OpenTelemetry span object (what making one
    would cost a request is what it saves); :meth:`span_context` builds the SDK's view of
    its ids for the code that needs one.
    """

    __slots__ = (
        "end_ns",
        "flags",
        "method",
        "parent_remote",
        "parent_span_id",
        "route",
        "span_id",
        "start_ns",
        "status",
        "trace_id",
        "trace_state",
    )

    def __init__(
        self,
        method: str,
        route: str,
        trace_id: int,
        span_id: int,
        parent_span_id: int,
        parent_remote: bool,
        trace_state: str,
        start_ns: int,
        end_ns: int = 0,
        status: int = 0,
        flags: int = TraceFlags.SAMPLED,
    ) -> None:
        self.method = method
        #: The route template (``/v2/{name}/manifests/{reference}``), never the raw path.
        self.route = route
        self.trace_id = trace_id
        self.span_id = span_id
        #: The parent's span id (a client's ``traceparent``), ``0`` for a new trace.
        self.parent_span_id = parent_span_id
        #: Whether the parent came from another process (always so when there is one).
        self.parent_remote = parent_remote
        #: The W3C ``tracestate`` carried on (``"key=value,..."``), ``""`` when there is none.
        self.trace_state = trace_state
        #: Nanoseconds since the epoch; ``end_ns`` is ``0`` until the request ends.
        self.start_ns = start_ns
        self.end_ns = end_ns
        #: The HTTP status sent (``0`` until the request ends).
        self.status = status
        #: The W3C trace flags of the span's context (sampled, and whether the id is random).
        self.flags = flags

    def span_context(self) -> SpanContext:
        """The span's ids and flags as OpenTelemetry's (made on each call)."""
        state = TraceState.from_header([self.trace_state]) if self.trace_state else None
        return SpanContext(
            self.trace_id, self.span_id, False, TraceFlags(self.flags), trace_state=state
        )

    def __repr__(self) -> str:
        return (
            f"RequestSpan({self.method} {self.route}, trace {self.trace_id:032x}, "
            f"span {self.span_id:016x}, status {self.status})"
        )


class RequestSpanSink(Protocol):
    """Where finished request spans go.

    ``add`` is called on the request's thread and must not block on I/O; a sink that
    cannot keep up drops spans rather than slowing requests. ``close`` sends what is
    still held, within a bound, and is called once when the app shuts down.
    """

    def add(self, span: RequestSpan, /) -> None:
        """Take one ended span (the sink owns it from then on)."""

    def close(self) -> None:
        """Send what is held and stop."""
