"""The request span exporter: batches, bounds, retries and the OTLP/HTTP wire."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from adapters.otlp_request_spans import ExportOptions, OtlpRequestSpans, parse_headers
from adapters.otlp_span_encoding import RequestSpanEncoder
from core.request_spans import RequestSpan
from tests.services.otlp import OtlpReceiver

ROUTE = "/v2/{name}/manifests/{reference}"
ENCODER = RequestSpanEncoder({"service.name": "moorage"}, "moorage.api")


def _span(number: int) -> RequestSpan:
    return RequestSpan("GET", ROUTE, number + 1, number + 1, 0, False, "", 1, 2, 200)


def _span_ids(body: bytes) -> list[int]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    return _ids(request)


def _ids(request: ExportTraceServiceRequest) -> list[int]:
    return [
        int.from_bytes(span.span_id, "big")
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]


class Posts:
    """A stand-in for the HTTP client: answers from a list, then 200."""

    def __init__(self, answers: list[tuple[int, float | None]] | None = None) -> None:
        self.answers = list(answers or [])
        self.bodies: list[bytes] = []
        self.sleeps: list[float] = []
        self.lock = threading.Lock()

    def post(self, body: bytes) -> tuple[int, float | None]:
        with self.lock:
            self.bodies.append(body)
            return self.answers.pop(0) if self.answers else (200, None)

    def delivered(self) -> list[int]:
        with self.lock:
            return [i for body in self.bodies for i in _span_ids(body)]


def _sink(posts: Posts, **options: float) -> OtlpRequestSpans:
    settings = ExportOptions("http://127.0.0.1:1/v1/traces", schedule_delay=3600.0)
    for key, value in options.items():
        settings = ExportOptions(**{**settings.__dict__, key: value})
    return OtlpRequestSpans(ENCODER, settings, post=posts.post, sleep=posts.sleeps.append)


def test_spans_go_out_in_batches_and_close_sends_the_rest() -> None:
    posts = Posts()
    sink = _sink(posts, max_batch=4)
    for number in range(10):
        sink.add(_span(number))
    sink.close()
    assert sorted(posts.delivered()) == list(range(1, 11))
    assert all(len(_span_ids(body)) <= 4 for body in posts.bodies)
    assert sink.exported == 10
    assert sink.dropped == 0


def test_a_full_batch_is_sent_without_waiting_for_the_schedule() -> None:
    posts = Posts()
    sink = _sink(posts, max_batch=3)
    try:
        for number in range(3):
            sink.add(_span(number))
        done = threading.Event()
        for _ in range(500):  # bounded: at most 5 s
            if posts.delivered():
                done.set()
                break
            threading.Event().wait(0.01)
        assert done.is_set()  # the schedule delay is an hour
        assert sorted(posts.delivered()) == [1, 2, 3]
    finally:
        sink.close()


def test_a_full_queue_drops_new_spans_and_counts_them() -> None:
    posts = Posts()
    sink = _sink(posts, max_queue=5, max_batch=100)
    for number in range(8):
        sink.add(_span(number))
    assert sink.dropped == 3
    sink.close()
    assert sorted(posts.delivered()) == [1, 2, 3, 4, 5]
    sink.add(_span(99))  # after close: dropped, never sent
    assert sink.dropped == 4
    assert 100 not in posts.delivered()


def test_retryable_answers_are_retried_with_backoff_others_drop_the_batch() -> None:
    posts = Posts([(503, None), (0, None), (429, 3.0), (200, None), (400, None)])
    sink = _sink(posts, max_batch=2, timeout=10.0)
    for number in range(4):
        sink.add(_span(number))
    sink.close()
    # First batch: 503, no connection, 429 with Retry-After 3, then taken. Second: 400.
    assert posts.sleeps == [0.5, 1.0, 3.0]
    assert len(posts.bodies) == 5
    assert sink.exported == 2


def test_retries_stop_after_the_timeouts_worth_of_waiting() -> None:
    posts = Posts([(503, None)] * 10)
    sink = _sink(posts, timeout=2.0)
    sink.add(_span(1))
    sink.close()
    assert posts.sleeps == [0.5, 1.0]  # the next wait (2.0) would pass 2 s
    assert sink.exported == 0


def test_options_come_from_the_otel_variables_with_the_configured_headers_on_top() -> None:
    environ = {
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_BSP_MAX_QUEUE_SIZE": "100",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "10",
        "OTEL_BSP_EXPORT_TIMEOUT": "1500",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "3",
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "4",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "GZIP",
        "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Basic%20abc,X-Tenant=a",
        "OTEL_EXPORTER_OTLP_CERTIFICATE": "/etc/ca.pem",
    }
    options = ExportOptions.from_environment("https://c:4318/v1/traces", {"X-Tenant": "b"}, environ)
    assert options.schedule_delay == 0.2
    assert (options.max_queue, options.max_batch) == (100, 10)
    assert options.close_timeout == 1.5
    assert options.timeout == 4.0  # the traces variable wins
    assert options.compression == "gzip"
    assert options.headers == {"authorization": "Basic abc", "x-tenant": "b"}
    assert options.ca_file == "/etc/ca.pem"
    defaults = ExportOptions.from_environment("http://c/v1/traces", {}, {})
    assert (defaults.schedule_delay, defaults.max_queue, defaults.max_batch) == (5.0, 2048, 512)
    assert (defaults.timeout, defaults.compression) == (10.0, "none")
    bad = ExportOptions.from_environment("http://c/", {}, {"OTEL_EXPORTER_OTLP_COMPRESSION": "br"})
    assert bad.compression == "none"
    assert parse_headers("a=1, b = x%3Dy ,broken") == {"a": "1", "b": "x=y"}


@pytest.fixture
def collector() -> Iterator[tuple[OtlpReceiver, list[tuple[Mapping[str, str], list[int]]]]]:
    received: list[tuple[Mapping[str, str], list[int]]] = []
    receiver = OtlpReceiver(lambda headers, request: received.append((headers, _ids(request))))
    yield receiver, received
    receiver.close()


def test_batches_reach_a_collector_over_http_compressed_with_their_headers(
    collector: tuple[OtlpReceiver, list[tuple[Mapping[str, str], list[int]]]],
) -> None:
    receiver, received = collector
    environ = {"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "3"}
    options = ExportOptions.from_environment(receiver.url, {"Authorization": "Bearer t"}, environ)
    sink = OtlpRequestSpans(ENCODER, options)
    for number in range(7):
        sink.add(_span(number))
    sink.close()
    assert sorted(i for _, ids in received for i in ids) == list(range(1, 8))
    for headers, _ in received:
        assert headers["content-type"] == "application/x-protobuf"
        assert headers["content-encoding"] == "gzip"
        assert headers["authorization"] == "Bearer t"
    assert sink.exported == 7


def test_an_endpoint_that_is_not_http_is_refused() -> None:
    with pytest.raises(ValueError, match="http"):
        OtlpRequestSpans(ENCODER, ExportOptions("grpc://127.0.0.1:4317"))
