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

Requests are counted in a :class:`api.request_tally.RequestTally` and added to the families
every :data:`PUBLISH_SECONDS` by a background thread, before a process renders its
exposition and at shutdown: a scrape sees its own process's requests at once and the other
workers' at most :data:`PUBLISH_SECONDS` late; a worker killed outright loses at most that
much of its counts.
"""

from __future__ import annotations

import logging
import os
import threading
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

from api.request_tally import Key, RequestTally, Taken
from core.resumable_hash import REHASH_REASONS

MULTIPROC_VARIABLE: Final = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
#: Latency buckets (seconds): manifest GETs take milliseconds, blob transfers minutes.
BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120)
_METHODS: Final = frozenset({"GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"})
_LABELS: Final = ("operation", "method", "code")
#: Longest time counted requests wait to be added to the families.
PUBLISH_SECONDS: Final = 1.0

logger = logging.getLogger(__name__)


def multiprocess_dir() -> str | None:
    """The directory of the multi-process mode, if this process runs in it."""
    return os.environ.get(MULTIPROC_VARIABLE) or None


class ApiMetrics:
    """The metric families of one API process, and cached label children.

    Recording a request costs a few dictionary updates in a tally (one lock); the tally is
    published into the families (label children made once per route, method and status)
    by a thread every ``publish_seconds``, by :meth:`render` and by :meth:`close`.
    Thread-safe.
    """

    def __init__(self, publish_seconds: float = PUBLISH_SECONDS) -> None:
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
        self._children: dict[Key, tuple[Counter, Histogram]] = {}
        self._by_operation: dict[str, tuple[Gauge, Counter, Counter]] = {}
        self._tally = RequestTally(BUCKETS)
        self._publish_seconds = publish_seconds
        self._publishing = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def started(self, operation: str, *, upload: bool) -> None:
        """Count a request of ``operation`` in flight (``upload``: also as an upload)."""
        if self._thread is None:
            self._start()
        self._tally.started(operation, upload=upload)

    def ended(
        self,
        operation: str,
        method: str,
        status: int,
        seconds: float,
        *,
        upload: bool,
        received: int,
        sent: int,
    ) -> None:
        """Count a request that :meth:`started` as answered, with its body bytes."""
        self._tally.ended(
            operation, method, status, seconds, upload=upload, received=received, sent=sent
        )

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
        """Count one answered request (never counted in flight) and its duration."""
        if self._thread is None:
            self._start()
        self._tally.answered(operation, method, status, seconds)

    def of_answer(self, key: Key) -> tuple[Counter, Histogram]:
        """The request counter and duration histogram of ``key`` (cached)."""
        children = self._children.get(key)
        if children is None:
            operation, method, status = key
            label_method = method if method in _METHODS else "OTHER"
            labels = (operation, label_method, str(status))
            children = (self.requests.labels(*labels), self.duration.labels(*labels))
            self._children[key] = children
        return children

    def publish(self) -> None:
        """Add what the tally counted since the last publication to the families."""
        with self._publishing:
            taken = self._tally.take()
            if taken is not None:
                self._add(taken)

    def _add(self, taken: Taken) -> None:
        for key, answered in taken.answered.items():
            counter, histogram = self.of_answer(key)
            counter.inc(answered.count)
            # NOTE: prometheus-client adds one observation at a time; a histogram child
            # keeps its sum and its (non-cumulative) bucket counts as these values, so a
            # whole tally goes in with one update per bucket that changed (tested against
            # observe() in tests/unit/api/test_request_tally.py).
            histogram._sum.inc(answered.seconds)  # noqa: SLF001
            buckets = histogram._buckets  # noqa: SLF001
            for index, count in enumerate(answered.buckets):
                if count:
                    buckets[index].inc(count)
        for operation, count in taken.received.items():
            self.of_operation(operation)[1].inc(count)
        for operation, count in taken.sent.items():
            self.of_operation(operation)[2].inc(count)
        for operation, count in taken.inflight.items():
            self.of_operation(operation)[0].set(count)
        self.uploads_in_flight.set(taken.uploads)

    def _start(self) -> None:
        """Start the publishing thread (a benign race: the first requests may start two)."""
        thread = threading.Thread(target=self._run, name="api-metrics", daemon=True)
        self._thread = thread
        thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._publish_seconds):
            try:
                self.publish()
            except Exception:  # a failed publication (disk full) is tried again next time
                logger.exception("publishing the request metrics failed")

    def close(self) -> None:
        """Publish what is counted and stop the publishing thread (the app shuts down)."""
        self._stop.set()
        self.publish()

    def rehashed(self, reason: str, size: int) -> None:
        """Count ``size`` upload bytes re-read for ``reason`` (``core.resumable_hash``)."""
        child = self._rehash.get(reason)
        if child is None:
            child = self._rehash[reason] = self.upload_rehash.labels(reason)
        child.inc(size)

    def render(self) -> bytes:
        """The exposition of every metric of this process (of all processes in multi mode)."""
        self.publish()
        if not self.multiprocess:
            return generate_latest(self.registry)
        return render_multiprocess()


def render_multiprocess() -> bytes:
    """The exposition summed over every process writing to the multi-process directory."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)
