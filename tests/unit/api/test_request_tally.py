"""Requests counted in a tally reach the metric families as if each had been recorded."""

from __future__ import annotations

import re
import threading

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from api import request_tally
from api.metrics import BUCKETS, MULTIPROC_VARIABLE, ApiMetrics
from api.request_tally import RequestTally

MANIFEST = "/v2/{name}/manifests/{reference}"
UPLOAD = "/v2/{name}/blobs/uploads/{uuid}"
DURATIONS = (0.0004, 0.001, 0.001, 0.0031, 0.7, 0.7, 3.0, 500.0, 0.0)


def _samples(exposition: bytes, prefix: str) -> dict[str, float]:
    return {
        name: float(value)
        for name, value in re.findall(rb"^(\S+) (\S+)$", exposition, re.MULTILINE)
        for name, value in [(name.decode(), value)]
        if name.startswith(prefix) and "_created" not in name
    }


@pytest.fixture
def metrics(monkeypatch: pytest.MonkeyPatch) -> ApiMetrics:
    monkeypatch.delenv(MULTIPROC_VARIABLE, raising=False)
    return ApiMetrics(publish_seconds=3600)


def test_published_histogram_and_counter_equal_one_observation_each(metrics: ApiMetrics) -> None:
    reference = CollectorRegistry()
    counter = Counter(
        "moorage_http_request", "x", ("operation", "method", "code"), registry=reference
    )
    histogram = Histogram(
        "moorage_http_request_duration_seconds",
        "x",
        ("operation", "method", "code"),
        buckets=BUCKETS,
        registry=reference,
    )
    for seconds in DURATIONS:
        metrics.started(MANIFEST, upload=False)
        metrics.ended(MANIFEST, "GET", 200, seconds, upload=False, received=0, sent=512)
        counter.labels(MANIFEST, "GET", "200").inc()
        histogram.labels(MANIFEST, "GET", "200").observe(seconds)
    metrics.observe("/api/v1/projects", "GET", 404, 0.02)
    counter.labels("/api/v1/projects", "GET", "404").inc()
    histogram.labels("/api/v1/projects", "GET", "404").observe(0.02)

    published = metrics.render()  # a scrape publishes the tally first
    expected = generate_latest(reference)
    for prefix in ("moorage_http_request_total", "moorage_http_request_duration_seconds_"):
        assert _samples(published, prefix) == _samples(expected, prefix)
    sent = _samples(published, "moorage_http_sent_bytes_total")
    assert sent == {f'moorage_http_sent_bytes_total{{operation="{MANIFEST}"}}': 512.0 * 9}


def test_in_flight_gauges_follow_requests_between_publications(metrics: ApiMetrics) -> None:
    metrics.started(MANIFEST, upload=False)
    metrics.started(UPLOAD, upload=True)
    metrics.started(UPLOAD, upload=True)
    during = metrics.render()
    assert _samples(during, "moorage_uploads_in_flight") == {"moorage_uploads_in_flight": 2.0}
    inflight = _samples(during, "moorage_http_inflight_requests")
    assert inflight[f'moorage_http_inflight_requests{{operation="{UPLOAD}"}}'] == 2.0
    assert inflight[f'moorage_http_inflight_requests{{operation="{MANIFEST}"}}'] == 1.0

    metrics.ended(UPLOAD, "PATCH", 202, 0.5, upload=True, received=1000, sent=0)
    metrics.ended(UPLOAD, "PUT", 201, 0.5, upload=True, received=10, sent=0)
    metrics.ended(MANIFEST, "GET", 200, 0.001, upload=False, received=0, sent=0)
    after = metrics.render()
    assert _samples(after, "moorage_uploads_in_flight") == {"moorage_uploads_in_flight": 0.0}
    assert set(_samples(after, "moorage_http_inflight_requests").values()) == {0.0}
    received = _samples(after, "moorage_http_received_bytes_total")
    assert received[f'moorage_http_received_bytes_total{{operation="{UPLOAD}"}}'] == 1010.0


def test_a_take_without_changes_is_none_and_counts_start_anew() -> None:
    tally = RequestTally(BUCKETS)
    assert tally.take() is None
    tally.answered(MANIFEST, "HEAD", 200, 0.002)
    taken = tally.take()
    assert taken is not None
    answered = taken.answered[MANIFEST, "HEAD", 200]
    assert (answered.count, answered.seconds) == (1, 0.002)
    assert answered.buckets[BUCKETS.index(0.0025)] == 1
    assert tally.take() is None


def test_close_publishes_what_is_counted(metrics: ApiMetrics) -> None:
    metrics.observe("/auth/token", "GET", 200, 0.01)
    metrics.close()
    exposition = generate_latest(metrics.registry)
    counted = _samples(exposition, "moorage_http_request_total")
    assert counted == {
        'moorage_http_request_total{code="200",method="GET",operation="/auth/token"}': 1.0
    }


def test_requests_recorded_from_threads_while_taken_are_each_counted_once() -> None:
    tally = RequestTally(BUCKETS)
    threads, per_thread = 4, 5_000
    answered: list[int] = []
    ended = threading.Event()

    def record() -> None:
        for index in range(per_thread):
            tally.started(UPLOAD, upload=True)
            tally.ended(UPLOAD, "PATCH", 202, 0.001, upload=True, received=index % 3, sent=0)

    def take() -> None:
        while not ended.is_set():
            taken = tally.take()
            if taken is not None:
                answered.extend(one.count for one in taken.answered.values())

    taker = threading.Thread(target=take)
    taker.start()
    writers = [threading.Thread(target=record) for _ in range(threads)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    ended.set()
    taker.join()
    last = tally.take()
    if last is not None:
        answered.extend(one.count for one in last.answered.values())
    assert sum(answered) == threads * per_thread
    assert tally.take() is None
    # Nothing is in flight once every request ended, whichever take saw the last end.
    tally.started(MANIFEST, upload=False)
    after = tally.take()
    assert after is not None
    assert after.inflight == {UPLOAD: 0, MANIFEST: 1}
    assert after.uploads == 0


def test_a_tally_nobody_takes_stays_bounded_and_loses_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(request_tally, "PENDING", 100)
    tally = RequestTally(BUCKETS)
    for _ in range(1_000):
        tally.started(UPLOAD, upload=True)
        tally.ended(UPLOAD, "PATCH", 202, 0.5, upload=True, received=3, sent=0)
        tally.answered("/auth/token", "GET", 200, 0.01)
        assert len(tally._records) <= 2 * 100 + 1
    taken = tally.take()
    assert taken is not None
    assert taken.answered[(UPLOAD, "PATCH", 202)].count == 1_000
    assert taken.answered[("/auth/token", "GET", 200)].count == 1_000
    assert taken.received == {UPLOAD: 3_000}
    assert taken.inflight == {UPLOAD: 0}
    assert taken.uploads == 0
    assert tally.take() is None


def test_a_failed_publication_does_not_stop_later_ones(
    metrics: ApiMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    publish = metrics.publish

    def flaky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        publish()
        metrics._stop.set()

    monkeypatch.setattr(metrics, "publish", flaky)
    monkeypatch.setattr(metrics, "_publish_seconds", 0.01)
    metrics.observe("/auth/token", "GET", 200, 0.01)
    assert metrics._thread is not None
    metrics._thread.join(10)
    assert len(calls) == 2
    counted = _samples(generate_latest(metrics.registry), "moorage_http_request_total")
    assert counted == {
        'moorage_http_request_total{code="200",method="GET",operation="/auth/token"}': 1.0
    }
