"""Request spans encoded directly decode to what the SDK's OTLP encoder makes of them."""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.status import Status, StatusCode

from adapters.otlp_span_encoding import RequestSpanEncoder
from core.request_spans import RequestSpan

RESOURCE = Resource.create(
    {
        "service.name": "moorage",
        "moorage.component": "api",
        "host.cores": 2,
        "ratio": 0.5,
        "debug": False,
        "tags": ["a", "b"],
    },
    schema_url="https://opentelemetry.io/schemas/1.21.0",
)
SCOPE = "moorage.api"
MANIFEST = "/v2/{name}/manifests/{reference}"


def _sdk_span(span: RequestSpan) -> ReadableSpan:
    """The span the SDK would have exported for ``span``."""
    state = TraceState(
        [tuple(item.split("=", 1)) for item in span.trace_state.split(",")]  # type: ignore[misc]
        if span.trace_state
        else []
    )
    context = SpanContext(span.trace_id, span.span_id, False, TraceFlags(1), trace_state=state)
    parent = (
        SpanContext(span.trace_id, span.parent_span_id, span.parent_remote, TraceFlags(1))
        if span.parent_span_id
        else None
    )
    return ReadableSpan(
        name=f"{span.method} {span.route}",
        context=context,
        parent=parent,
        resource=RESOURCE,
        attributes={
            "http.request.method": span.method,
            "http.route": span.route,
            "http.response.status_code": span.status,
        },
        kind=SpanKind.SERVER,
        status=Status(StatusCode.ERROR if span.status >= 500 else StatusCode.UNSET),
        start_time=span.start_ns,
        end_time=span.end_ns,
        instrumentation_scope=InstrumentationScope(SCOPE),
    )


def _decoded(body: bytes) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    return request


SPANS = [
    # a new trace
    RequestSpan("GET", MANIFEST, (1 << 127) | 5, 1, 0, False, "", 1_700_000_000_000_000_000,
                 1_700_000_000_002_500_000, 200),
    # a client's trace, with its tracestate, answered with a server error
    RequestSpan("PUT", MANIFEST, 0x4BF92F3577B34DA6A3CE929D0E0E4736, (1 << 64) - 1,
                 0x00F067AA0BA902B7, True, "vendor=abc,other=x", 1, 2, 503),
    # another route and status, ids with leading zero bytes
    RequestSpan("POST", "/api/v1/system/gc/", 7, 9, 3, True, "", 10**18, 10**18 + 1, 202),
    # the first template again (cached), a 4xx is not an error
    RequestSpan("GET", MANIFEST, 42, 43, 0, False, "", 5, 6, 404),
]  # fmt: skip


def test_a_batch_decodes_to_the_sdk_encoders_message() -> None:
    encoder = RequestSpanEncoder(
        dict(RESOURCE.attributes), SCOPE, resource_schema_url=RESOURCE.schema_url
    )
    ours = _decoded(encoder.encode(SPANS))
    sdk = encode_spans([_sdk_span(span) for span in SPANS])
    assert ours == sdk
    # And the statuses say what a person reading the trace expects.
    spans = ours.resource_spans[0].scope_spans[0].spans
    assert [span.status.code for span in spans] == [0, 2, 0, 0]
    assert spans[1].trace_state == "vendor=abc,other=x"


def test_each_batch_stands_alone() -> None:
    encoder = RequestSpanEncoder({"service.name": "moorage"}, SCOPE)
    first, second = _decoded(encoder.encode(SPANS[:1])), _decoded(encoder.encode(SPANS[1:]))
    assert [len(r.resource_spans[0].scope_spans[0].spans) for r in (first, second)] == [1, 3]
    assert second.resource_spans[0].scope_spans[0].scope.name == SCOPE
    assert second.resource_spans[0].resource.attributes[0].value.string_value == "moorage"
    assert _decoded(encoder.encode([])).resource_spans[0].scope_spans[0].spans == []


def test_spans_of_every_kind_decode_alike_on_first_and_later_encodings() -> None:
    """Spans packed by kind (method, route, status, parent) decode as the SDK's, cached or not."""
    kinds = [
        RequestSpan(method, route, trace_id, span_id, parent, remote, "", start, start + 7, status)
        for method, route in (("GET", MANIFEST), ("HEAD", "/v2/{name}/blobs/{digest}"))
        for status in (200, 404, 503)
        for parent, remote in ((0, False), (0xABCDEF, True), (0xABCDEF, False))
        for trace_id, span_id, start in (
            ((1 << 128) - 1, (1 << 64) - 1, (1 << 63) + 11),  # ids of all ones
            (1, 1, 0),  # ids that are mostly zero bytes
        )
    ]
    encoder = RequestSpanEncoder({"service.name": "moorage"}, SCOPE)
    sdk = encode_spans([_sdk_span(span) for span in kinds])
    for _ in range(2):  # the second time each kind's packer is reused
        ours = _decoded(encoder.encode(kinds))
        assert (
            ours.resource_spans[0].scope_spans[0].spans
            == sdk.resource_spans[0].scope_spans[0].spans
        )
