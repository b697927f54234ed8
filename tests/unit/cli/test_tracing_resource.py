"""The tracer provider's resource: hashed once, equal to the SDK's own."""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, TraceFlags

from cli.tracing import FixedResource

ATTRIBUTES = {"service.name": "moorage", "moorage.component": "api"}


def _span(resource: Resource, span_id: int) -> ReadableSpan:
    context = SpanContext(1, span_id, False, TraceFlags(TraceFlags.SAMPLED))
    return ReadableSpan("GET /v2/", context, resource=resource, start_time=1, end_time=2)


def test_a_fixed_resource_is_the_resource_it_was_made_from() -> None:
    made = Resource.create(ATTRIBUTES)
    fixed = FixedResource(made.attributes, made.schema_url)
    assert fixed == made
    assert made == fixed
    assert hash(fixed) == hash(made)
    assert fixed != Resource.create({**ATTRIBUTES, "moorage.component": "worker"})


def test_spans_of_a_fixed_resource_export_as_the_sdk_resources_do() -> None:
    made = Resource.create(ATTRIBUTES)
    fixed = FixedResource(made.attributes, made.schema_url)
    exported = encode_spans([_span(fixed, 2), _span(made, 3)])
    # One resource in the request, its attributes as the SDK's: equal resources group.
    (resource_spans,) = exported.resource_spans
    assert resource_spans == encode_spans([_span(made, 2), _span(made, 3)]).resource_spans[0]
