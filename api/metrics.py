"""The API's Prometheus metrics: requests by route template, bytes, uploads, auth.

Names follow Harbor's core metrics where one exists (``harbor_core_http_request_total``
becomes ``moorage_http_request_total``, with the same ``method``, ``code`` and
``operation`` labels). Labels are bounded: ``operation`` is a route template (never a
repository, digest or user name), ``method`` one of the HTTP methods the API answers,
``code`` a status code, ``reason`` one of ``core.resumable_hash.REHASH_REASONS``.

With several server worker processes (``moorage api --workers N``) every process writes
its values to files under ``PROMETHEUS_MULTIPROC_DIR`` (set by ``moorage api`` before
the workers start) and a scrape of any of them sums all processes
(:func:`render`). In one process the metrics live in the app's own registry.
"""

from __future__ import annotations

import os
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
    values,
)

from core.resumable_hash import REHASH_REASONS

MULTIPROC_VARIABLE: Final = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
#: Latency buckets (seconds): manifest GETs take milliseconds, blob transfers minutes.
BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120)
_METHODS: Final = frozenset({"GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"})
_LABELS: Final = ("operation", "method", "code")


def multiprocess_dir() -> str | None:
    """The directory of the multi-process mode, if this process runs in it."""
    return os.environ.get(MULTIPROC_VARIABLE) or None


class ApiMetrics:
    """The metric families of one API process, and cached label children.

    Recording a request costs two dictionary look-ups and the increments (the label
    children are made once per route, method and status). Thread-safe through
    prometheus-client's own locks.
    """

    def __init__(self) -> None:
        self.multiprocess = multiprocess_dir() is not None
        if self.multiprocess and values.ValueClass.__name__ != "MmapedValue":
            # NOTE: prometheus-client picks its value class when it is imported; a server
            # worker may have imported it before the variable was read, so pick again.
            values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        if not self.multiprocess:
            ProcessCollector(registry=self.registry)
        registry = self.registry
        self.requests = Counter(
            "moorage_http_request", "HTTP requests answered.", _LABELS, registry=registry
        )
        self.duration = Histogram(
            "moorage_http_request_duration_seconds",
            "Time from a request's arrival until its response was sent.",
            _LABELS,
            buckets=BUCKETS,
            registry=registry,
        )
        self.inflight = Gauge(
            "moorage_http_inflight_requests",
            "Requests being answered.",
            ("operation",),
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.uploads_in_flight = Gauge(
            "moorage_uploads_in_flight",
            "Blob upload requests (POST, PATCH, PUT on an upload) being answered.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.received = Counter(
            "moorage_http_received_bytes",
            "Request body bytes received on /v2.",
            ("operation",),
            registry=registry,
        )
        self.sent = Counter(
            "moorage_http_sent_bytes",
            "Response body bytes sent on /v2 (Content-Length of non-HEAD answers).",
            ("operation",),
            registry=registry,
        )
        self.auth_failures = Counter(
            "moorage_auth_failures",
            "Requests answered 401 (missing, bad or expired credentials).",
            ("endpoint",),
            registry=registry,
        )
        self.tokens_issued = Counter(
            "moorage_tokens_issued",
            "Tokens issued by the token endpoints.",
            ("endpoint",),
            registry=registry,
        )
        self.upload_rehash = Counter(
            "moorage_upload_rehash_bytes",
            "Bytes of uploads read back from storage to hash them again, by reason.",
            ("reason",),
            registry=registry,
        )
        self._rehash = {reason: self.upload_rehash.labels(reason) for reason in REHASH_REASONS}
        self.upload_hash_resumable = Gauge(
            "moorage_upload_hash_resumable",
            "1 if running upload hashes are saved for other API processes to continue.",
            registry=registry,
            multiprocess_mode="livemin",
        )
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self._by_operation: dict[str, tuple[Gauge, Counter, Counter]] = {}

    def of_operation(self, operation: str) -> tuple[Gauge, Counter, Counter]:
        """The in-flight gauge and received and sent counters of ``operation`` (cached)."""
        children = self._by_operation.get(operation)
        if children is None:
            children = (
                self.inflight.labels(operation),
                self.received.labels(operation),
                self.sent.labels(operation),
            )
            self._by_operation[operation] = children
        return children

    def observe(self, operation: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request and its duration."""
        key = (operation, method, status)
        children = self._children.get(key)
        if children is None:
            label_method = method if method in _METHODS else "OTHER"
            labels = (operation, label_method, str(status))
            children = (self.requests.labels(*labels), self.duration.labels(*labels))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def rehashed(self, reason: str, size: int) -> None:
        """Count ``size`` upload bytes re-read for ``reason`` (``core.resumable_hash``)."""
        child = self._rehash.get(reason)
        if child is None:
            child = self._rehash[reason] = self.upload_rehash.labels(reason)
        child.inc(size)

    def render(self) -> bytes:
        """The exposition of every metric of this process (of all processes in multi mode)."""
        if not self.multiprocess:
            return generate_latest(self.registry)
        return render_multiprocess()


def render_multiprocess() -> bytes:
    """The exposition summed over every process writing to the multi-process directory."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)
