"""The server span of an HTTP request (OpenTelemetry), current while the request runs.

A span is named by the route template (``GET /v2/{name}/manifests/{reference}``), never
by the raw path; a request continues the trace its client sent (``traceparent``). The span
is current while the request runs, so what the request writes (an outbox event carries
the trace context, ``core.trace_context``) and logs (trace and span ids) belong to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from opentelemetry import context, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

_SERVER_ERROR: Final = 500
_TRACE_HEADERS: Final = (b"traceparent", b"tracestate")


class Span:
    """A request's span, current until :meth:`finish`."""

    __slots__ = ("_span", "_token")

    def __init__(self, span: trace.Span, token: Any) -> None:
        self._span = span
        self._token = token

    def finish(self, status: int) -> None:
        """Record the status sent, end the span and make the previous context current."""
        self._span.set_attribute("http.response.status_code", status)
        if status >= _SERVER_ERROR:
            self._span.set_status(Status(StatusCode.ERROR))
        context.detach(self._token)
        self._span.end()


class RequestTracer:
    """Starts the server spans of requests with one tracer."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def start(self, method: str, route: str, headers: Iterable[tuple[bytes, bytes]]) -> Span:
        """Start the span of a request and make it current, continuing the client's trace."""
        carrier = {
            bytes(key).decode("latin-1"): bytes(value).decode("latin-1")
            for key, value in headers
            if key in _TRACE_HEADERS
        }
        parent = propagate.extract(carrier) if carrier else None
        span = self._tracer.start_span(
            f"{method} {route}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "http.route": route},
        )
        return Span(span, context.attach(trace.set_span_in_context(span, parent)))
