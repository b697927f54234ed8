"""The process's OpenTelemetry tracer provider: sampled by ratio, exported over OTLP/HTTP.

Set up once per process (each server worker, the worker, ``moorage dev``) before the
first span, never in a parent that forks (the batch processor's thread does not survive
a fork). Temporal clients made afterwards carry the tracing interceptor
(``adapters.temporal_client``).

The API's request spans are sampled and made by ``api.tracing`` and exported by
:func:`request_spans` (``adapters.otlp_request_spans``: the same endpoint, headers,
resource and ``OTEL_*`` batch and exporter variables, without the SDK's per-span
objects); the ratio is the same setting.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from adapters.otlp_request_spans import ExportOptions, OtlpRequestSpans
from adapters.otlp_span_encoding import RequestSpanEncoder
from api.tracing import SCOPE_NAME
from core.observability_settings import TracingSettings

logger = logging.getLogger(__name__)


class FixedResource(Resource):
    """A resource whose hash is computed once.

    The OTLP encoder groups each exported span by its resource, hashing it every time
    (a JSON dump of its attributes): a fifth of the cost of encoding a request's span.
    A resource never changes after it is made, so neither does its hash.
    """

    def __init__(self, attributes: Any, schema_url: str | None = None) -> None:
        super().__init__(attributes, schema_url)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or super().__eq__(other)


def configure_tracing(settings: TracingSettings, component: str) -> TracerProvider | None:
    """Install the tracer provider ``settings`` ask for (``None`` when tracing is off).

    Args:
        settings: Whether to trace, where to export, which share to sample.
        component: ``api``, ``worker`` or ``dev`` (resource attribute ``moorage.component``).
    """
    if not settings.enabled:
        return None
    resource = Resource.create(
        {SERVICE_NAME: settings.service_name, "moorage.component": component}
    )
    provider = TracerProvider(
        resource=FixedResource(resource.attributes, resource.schema_url),
        sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
    )
    exporter = OTLPSpanExporter(endpoint=settings.endpoint, headers=dict(settings.headers))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    logger.info("tracing to %s (sampling %.0f%%)", settings.endpoint, settings.sample_ratio * 100)
    return provider


def request_spans(settings: TracingSettings) -> OtlpRequestSpans | None:
    """The exporter of the API's request spans, started (``None``: tracing is off).

    Uses the resource of the tracer provider :func:`configure_tracing` installed in this
    process; without one (tracing off, or someone else's provider) there is none.
    """
    provider = trace.get_tracer_provider()
    if not settings.enabled or not isinstance(provider, TracerProvider):
        return None
    resource = provider.resource
    encoder = RequestSpanEncoder(
        dict(resource.attributes), SCOPE_NAME, resource_schema_url=resource.schema_url
    )
    options = ExportOptions.from_environment(settings.endpoint, settings.headers)
    return OtlpRequestSpans(encoder, options)
