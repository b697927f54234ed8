"""The worker's Prometheus endpoints: Moorage's gauges and the Temporal SDK's metrics.

``metrics.worker_port`` serves what the database says (read at scrape time, reused for
``gauges_refresh_seconds``), with Harbor's names where it has them:

- ``moorage_task_queue_size{type="outbox"}``: outbox events not dispatched yet;
- ``moorage_task_queue_latency{type="outbox"}``: age in seconds of the oldest of them;
- ``moorage_task_runs{type,status}``: GC and retention runs by state;
- ``moorage_task_last_duration_seconds{type}``: how long the last finished run took;
- ``moorage_project_quota_usage_byte{project_name}`` and ``moorage_project_quota_byte``:
  usage and limit of at most ``quota_projects_max`` projects with a quota
  (``moorage_project_quota_truncated`` is 1 when more exist);
- ``moorage_ops_stats_up``: 0 when the database could not be read.

Several workers report the same figures; aggregate them with ``max``.
``metrics.temporal_port`` is the Temporal SDK's own endpoint (``temporal_*`` metrics,
durations in seconds), set up on the runtime the worker's client uses.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import ValidationError
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from core.services.quota import QuotaLimits
from storage.db.engine import create_engines
from storage.db.ops_stats import OpsStats

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from core.observability_settings import MetricsSettings
    from core.settings import Settings

logger = logging.getLogger(__name__)


class OpsCollector(Collector):
    """Collects the database-derived gauges, at most once per refresh interval."""

    def __init__(self, stats: OpsStats, settings: MetricsSettings) -> None:
        self._stats = stats
        self._settings = settings
        self._lock = threading.Lock()
        self._families: list[Metric] = []
        self._at = float("-inf")

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = time.monotonic()
            if now - self._at >= self._settings.gauges_refresh_seconds:
                self._families = self._read()
                self._at = now
            families = list(self._families)
        yield from families

    def _read(self) -> list[Metric]:
        up = GaugeMetricFamily("moorage_ops_stats_up", "Whether the database could be read.")
        try:
            families = [*self._queue(), *self._runs(), *self._quotas()]
        except Exception:
            logger.exception("reading the operations gauges failed")
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        return [*families, up]

    def _queue(self) -> list[Metric]:
        backlog = self._stats.backlog()
        size = GaugeMetricFamily(
            "moorage_task_queue_size", "Events waiting to be dispatched.", labels=["type"]
        )
        size.add_metric(["outbox"], backlog.events)
        latency = GaugeMetricFamily(
            "moorage_task_queue_latency",
            "Seconds the oldest waiting event has waited.",
            labels=["type"],
        )
        oldest = backlog.oldest
        age = 0.0 if oldest is None else (datetime.now(UTC) - oldest).total_seconds()
        latency.add_metric(["outbox"], age)
        return [size, latency]

    def _runs(self) -> list[Metric]:
        runs = GaugeMetricFamily(
            "moorage_task_runs", "GC and retention runs by state.", labels=["type", "status"]
        )
        for (kind, state), count in sorted(self._stats.runs().items()):
            runs.add_metric([kind, state], count)
        last = GaugeMetricFamily(
            "moorage_task_last_duration_seconds",
            "Seconds from request to end of the last finished run.",
            labels=["type"],
        )
        for kind, seconds in sorted(self._stats.last_durations().items()):
            last.add_metric([kind], seconds)
        return [runs, last]

    def _quotas(self) -> list[Metric]:
        figures, truncated = self._stats.quotas(self._settings.quota_projects_max)
        usage = GaugeMetricFamily(
            "moorage_project_quota_usage_byte", "Bytes a project uses.", labels=["project_name"]
        )
        limit = GaugeMetricFamily(
            "moorage_project_quota_byte", "A project's byte quota.", labels=["project_name"]
        )
        for figure in figures:
            usage.add_metric([figure.project], figure.usage.bytes)
            try:
                quota = QuotaLimits.load(figure.policy).bytes
            except (ValidationError, ValueError):
                quota = None
            if quota is not None:
                limit.add_metric([figure.project], quota)
        cut = GaugeMetricFamily(
            "moorage_project_quota_truncated",
            "1 when more projects have a quota than metrics.quota_projects_max.",
        )
        cut.add_metric([], 1 if truncated else 0)
        return [usage, limit, cut]


class WorkerMetricsServer:
    """The worker's ``/metrics`` listener (a thread of prometheus-client)."""

    def __init__(self, stats: OpsStats, settings: MetricsSettings) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self.registry.register(OpsCollector(stats, settings))
        self._settings = settings
        self._server: Any = None

    def start(self) -> int:
        """Listen on ``metrics.worker_port`` and return the bound port."""
        port = self._settings.worker_port or 0
        self._server, _thread = start_http_server(
            port, addr=self._settings.host, registry=self.registry
        )
        bound = int(self._server.server_port)
        logger.info("worker metrics on http://%s:%d/metrics", self._settings.host, bound)
        return bound

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def temporal_runtime(settings: MetricsSettings) -> Runtime | None:
    """A Temporal runtime exporting the SDK's metrics on ``metrics.temporal_port``."""
    if settings.temporal_port is None:
        return None
    telemetry = TelemetryConfig(
        metrics=PrometheusConfig(
            bind_address=f"{settings.host}:{settings.temporal_port}", durations_as_seconds=True
        )
    )
    return Runtime(telemetry=telemetry)


def start_worker_metrics(settings: Settings, stack: AsyncExitStack) -> int | None:
    """Serve the worker's ``/metrics`` if configured, stopped when ``stack`` closes.

    Returns:
        The bound port, or ``None`` when the worker has no metrics port.
    """
    metrics = settings.observability.metrics
    if not metrics.enabled or metrics.worker_port is None:
        return None
    engines = create_engines(settings)
    stack.callback(engines.dispose)
    server = WorkerMetricsServer(OpsStats(engines), metrics)
    port = server.start()
    stack.callback(server.stop)
    return port
