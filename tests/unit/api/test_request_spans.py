"""Request spans: sampling decided once, nothing made for an unsampled request."""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Callable, Iterator

import pytest
from opentelemetry import context, trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.proto.trace.v1.trace_pb2 import SpanFlags, Status
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind

from adapters.otlp_span_encoding import RequestSpanEncoder
from api.observe import build_observer
from api.tracing import SCOPE_NAME, RequestTracer
from cli.logs import JsonFormatter
from core.observability_settings import ObservabilitySettings, TracingSettings
from core.request_context import CURRENT, RequestContext
from core.request_spans import RequestSpan
from core.trace_context import TRACE_KEY, with_trace

MANIFEST = "/v2/{name}/manifests/{reference}"
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-00$")


class Spans:
    """Request spans kept in memory, beside an SDK tracer provider like ``cli.tracing``'s."""

    def __init__(self, ratio: float) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": "moorage", "moorage.component": "api"}),
            sampler=ParentBased(TraceIdRatioBased(ratio)),
        )
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.sdk_tracer = self.provider.get_tracer(SCOPE_NAME)
        self.ratio = ratio
        self.draws: list[int] = []
        self.spans: list[RequestSpan] = []
        self.closed = False

    def add(self, span: RequestSpan, /) -> None:
        self.spans.append(span)

    def close(self) -> None:
        self.closed = True

    def tracer(self, bits: Callable[[int], int] | None = None) -> RequestTracer:
        def counted(n: int) -> int:
            value = bits(n) if bits is not None else random.getrandbits(n)
            self.draws.append(n)
            return value

        return RequestTracer(self, self.ratio, bits=counted)

    def finished(self) -> list[ProtoSpan]:
        """The request spans as the exporter sends them (OTLP protobuf, decoded)."""
        encoder = RequestSpanEncoder(dict(self.provider.resource.attributes), SCOPE_NAME)
        request = ExportTraceServiceRequest()
        request.ParseFromString(encoder.encode(self.spans))
        (resource_spans,) = request.resource_spans
        (scope_spans,) = resource_spans.scope_spans
        assert scope_spans.scope.name == SCOPE_NAME
        assert {a.key: a.value.string_value for a in resource_spans.resource.attributes}[
            "moorage.component"
        ] == "api"
        return list(scope_spans.spans)


def _attributes(span: ProtoSpan) -> dict[str, object]:
    return {
        a.key: a.value.int_value if a.value.HasField("int_value") else a.value.string_value
        for a in span.attributes
    }


@pytest.fixture
def request_context() -> Iterator[RequestContext]:
    request = RequestContext("r1", MANIFEST, "GET", {})
    token = CURRENT.set(request)
    yield request
    CURRENT.reset(token)


def _log_fields() -> dict[str, object]:
    record = logging.LogRecord("moorage.test", logging.INFO, __file__, 1, "m", (), None)
    document: dict[str, object] = json.loads(JsonFormatter().format(record))
    return document


def test_an_unsampled_request_makes_no_span_and_exports_nothing(
    request_context: RequestContext,
) -> None:
    spans = Spans(0.0)
    tracer = spans.tracer()
    before = context.get_current()
    span = tracer.start("GET", MANIFEST, [(b"accept", b"*/*")], request_context)
    assert span is None
    # Nothing is made current: log lines carry no trace ids, no context was attached.
    assert context.get_current() is before
    assert not trace.get_current_span().get_span_context().is_valid
    assert "trace_id" not in _log_fields()
    assert spans.spans == []
    # One draw decided it (the would-be trace id); no span id was made.
    assert spans.draws == [128]
    assert request_context.unsampled == ""


def test_the_ratio_decides_on_the_trace_id_as_the_sdk_sampler_does(
    request_context: RequestContext,
) -> None:
    spans = Spans(0.25)
    sampler = TraceIdRatioBased(0.25)
    ids = [(1 << 64) // 4 - 1, (1 << 64) // 4, (7 << 64) | 5, (1 << 64) - 1]
    for trace_id in ids:
        tracer = spans.tracer(lambda n, trace_id=trace_id: trace_id if n == 128 else 42)  # type: ignore[misc]
        span = tracer.start("GET", MANIFEST, [], request_context)
        sdk = sampler.should_sample(None, trace_id, "GET", SpanKind.SERVER).decision
        assert (span is not None) == (sdk is Decision.RECORD_AND_SAMPLE), hex(trace_id)
        if span is not None:
            assert span.span_context().trace_id == trace_id
            span.finish(200)
    assert [int.from_bytes(s.trace_id, "big") for s in spans.finished()] == [ids[0], ids[2]]


def test_a_sampled_request_is_current_and_exports_one_server_span(
    request_context: RequestContext,
) -> None:
    spans = Spans(1.0)
    span = spans.tracer().start("GET", MANIFEST, [], request_context)
    assert span is not None
    current = trace.get_current_span().get_span_context()
    assert current == span.span_context()
    assert current.trace_flags.sampled
    fields = _log_fields()
    assert fields["trace_id"] == format(current.trace_id, "032x")
    assert fields["span_id"] == format(current.span_id, "016x")
    # Work the request hands on continues its trace.
    carried = with_trace({"a": 1})[TRACE_KEY]
    assert carried["traceparent"].split("-")[1:3] == [
        format(current.trace_id, "032x"),
        format(current.span_id, "016x"),
    ]
    span.finish(200)
    assert not trace.get_current_span().get_span_context().is_valid
    (exported,) = spans.finished()
    assert exported.name == f"GET {MANIFEST}"
    assert exported.kind == ProtoSpan.SPAN_KIND_SERVER
    assert exported.trace_id == current.trace_id.to_bytes(16, "big")
    assert exported.span_id == current.span_id.to_bytes(8, "big")
    assert exported.parent_span_id == b""
    assert _attributes(exported) == {
        "http.request.method": "GET",
        "http.route": MANIFEST,
        "http.response.status_code": 200,
    }
    assert exported.status.code == Status.STATUS_CODE_UNSET
    assert 0 < exported.start_time_unix_nano <= exported.end_time_unix_nano
    assert not exported.flags & SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK


def test_a_server_error_marks_the_span_as_failed(request_context: RequestContext) -> None:
    spans = Spans(1.0)
    span = spans.tracer().start("PUT", MANIFEST, [], request_context)
    assert span is not None
    span.finish(503)
    (exported,) = spans.finished()
    assert exported.status.code == Status.STATUS_CODE_ERROR
    assert _attributes(exported)["http.response.status_code"] == 503


def test_a_sampled_traceparent_is_followed_whatever_the_ratio(
    request_context: RequestContext,
) -> None:
    spans = Spans(0.0)
    headers = [
        (b"accept", b"*/*"),
        (b"traceparent", f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01".encode()),
        (b"tracestate", b"vendor=abc"),
    ]
    span = spans.tracer().start("GET", MANIFEST, headers, request_context)
    assert span is not None
    assert format(trace.get_current_span().get_span_context().trace_id, "032x") == CLIENT_TRACE
    span.finish(200)
    # Exported as the SDK exports a child of a remote parent.
    (proto,) = spans.finished()
    assert proto.trace_id.hex() == CLIENT_TRACE
    assert proto.trace_state == "vendor=abc"
    assert proto.parent_span_id.hex() == CLIENT_SPAN
    assert proto.kind == ProtoSpan.SPAN_KIND_SERVER
    assert proto.flags & SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK


def test_an_unsampled_traceparent_is_not_sampled_and_stays_unsampled_downstream(
    request_context: RequestContext,
) -> None:
    spans = Spans(1.0)
    traceparent = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-00"
    tracer = spans.tracer()
    span = tracer.start(
        "POST", "/api/v1/system/gc/", [(b"traceparent", traceparent.encode())], request_context
    )
    assert span is None
    assert not trace.get_current_span().get_span_context().is_valid
    assert spans.draws == []
    # The outbox event carries the client's decision on to the worker.
    assert with_trace({"a": 1}) == {"a": 1, TRACE_KEY: {"traceparent": traceparent}}
    assert spans.spans == []


def test_a_new_unsampled_trace_is_handed_on_as_unsampled(request_context: RequestContext) -> None:
    spans = Spans(0.0)
    assert spans.tracer().start("POST", "/api/v1/system/gc/", [], request_context) is None
    carried = with_trace({})[TRACE_KEY]
    assert TRACEPARENT.match(carried["traceparent"]), carried


def test_outside_a_request_nothing_is_handed_on() -> None:
    assert with_trace({"a": 1}) == {"a": 1}


def test_a_malformed_traceparent_starts_a_new_trace(request_context: RequestContext) -> None:
    spans = Spans(1.0)
    headers = [(b"traceparent", b"not-a-trace-context")]
    span = spans.tracer().start("GET", MANIFEST, headers, request_context)
    assert span is not None
    span.finish(200)
    (exported,) = spans.finished()
    assert exported.parent_span_id == b""
    assert exported.trace_id.hex() != CLIENT_TRACE


def test_spans_nest_under_the_request_span(request_context: RequestContext) -> None:
    """A span the SDK starts inside the request (a Temporal client call) is its child."""
    spans = Spans(0.5)
    span = spans.tracer(lambda n: 1 if n == 128 else 99).start("GET", "/v2/", [], request_context)
    assert span is not None
    with spans.sdk_tracer.start_as_current_span("StartWorkflow:X") as child:
        assert child.is_recording()
    span.finish(200)
    (inner,) = spans.exporter.get_finished_spans()
    (outer,) = spans.spans
    assert inner.parent is not None
    assert inner.parent.span_id == outer.span_id == 99
    assert inner.context.trace_id == outer.trace_id == 1


def test_the_observer_traces_into_the_sink_it_is_given_and_closes_it() -> None:
    settings = ObservabilitySettings(tracing=TracingSettings(enabled=True, sample_ratio=1.0))
    spans = Spans(1.0)
    observer = build_observer(settings, request_spans=spans)
    assert observer.tracer is not None
    assert observer.tracer.sink is spans
    observer.close()
    assert spans.closed
    # No sink (no tracer provider in the process), or tracing off: nothing is traced.
    assert build_observer(settings).tracer is None
    off = ObservabilitySettings(tracing=TracingSettings(enabled=False))
    assert build_observer(off, request_spans=spans).tracer is None


def test_on_the_v2_path_the_span_is_the_requests_without_being_made_current(
    request_context: RequestContext,
) -> None:
    spans = Spans(1.0)
    before = context.get_current()
    headers = [(b"traceparent", f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01".encode())]
    span = spans.tracer().start("GET", MANIFEST, headers, request_context, current=False)
    assert span is not None
    # OpenTelemetry's context is left alone ...
    assert context.get_current() is before
    assert not trace.get_current_span().get_span_context().is_valid
    # ... yet log lines, and work handed on, belong to the request's span.
    assert request_context.span is span
    fields = _log_fields()
    assert fields["trace_id"] == CLIENT_TRACE
    assert fields["span_id"] == format(span.span_context().span_id, "016x")
    carried = with_trace({})[TRACE_KEY]
    assert carried == {
        "traceparent": f"00-{CLIENT_TRACE}-{span.span_context().span_id:016x}-01",
    }
    span.finish(200)
    (exported,) = spans.finished()
    assert exported.parent_span_id.hex() == CLIENT_SPAN
