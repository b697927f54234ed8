"""The finished server span of a sampled request, and where such spans go.

``api.tracing`` decides which requests are sampled and, at the end of a sampled one,
hands a :class:`FinishedSpan` to a :class:`RequestSpanSink`. The sink the processes use
(``adapters.otlp_request_spans``) batches the spans and exports them over OTLP/HTTP in
the same process, off the request: a span costs the request one ``add``.

A :class:`FinishedSpan` holds what the OpenTelemetry SDK would have exported for the
request's span: its name is ``"<method> <route>"``, its kind ``SERVER``, its attributes
``http.request.method``, ``http.route`` and ``http.response.status_code``, its status
``ERROR`` for a 5xx answer and ``UNSET`` otherwise.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

#: Answers from this status up mark the span as failed.
SERVER_ERROR = 500


class FinishedSpan(NamedTuple):
    """A sampled request's server span, ended."""

    method: str
    #: The route template (``/v2/{name}/manifests/{reference}``), never the raw path.
    route: str
    trace_id: int
    span_id: int
    #: The parent's span id (a client's ``traceparent``), ``0`` for a new trace.
    parent_span_id: int
    #: Whether the parent came from another process (always so when there is one).
    parent_remote: bool
    #: The W3C ``tracestate`` carried on (``"key=value,..."``), ``""`` when there is none.
    trace_state: str
    #: Nanoseconds since the epoch.
    start_ns: int
    end_ns: int
    #: The HTTP status sent.
    status: int


class RequestSpanSink(Protocol):
    """Where finished request spans go.

    ``add`` is called on the request's thread and must not block on I/O; a sink that
    cannot keep up drops spans rather than slowing requests. ``close`` sends what is
    still held, within a bound, and is called once when the app shuts down.
    """

    def add(self, span: FinishedSpan, /) -> None:
        """Take one finished span."""

    def close(self) -> None:
        """Send what is held and stop."""
