"""Settings of metrics, traces and logs (``Settings.observability``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class MetricsSettings(BaseModel):
    """Where the Prometheus endpoints listen.

    The API always answers ``GET /metrics`` on its own port when ``enabled``; ``api_port``
    adds a listener of its own (served by the ``moorage api`` main process, which sums
    every server worker's metrics). The worker's endpoints exist only when their port is
    set: ``worker_port`` for Moorage's metrics, ``temporal_port`` for the Temporal SDK's.
    """

    enabled: bool = True
    host: str = "127.0.0.1"
    #: A separate metrics port of the API (``None``: only ``/metrics`` on the API port).
    api_port: int | None = Field(default=None, ge=0, le=65535)
    #: The worker's ``/metrics`` port (``None``: none).
    worker_port: int | None = Field(default=None, ge=0, le=65535)
    #: The Temporal SDK's own Prometheus endpoint in the worker (``None``: none).
    temporal_port: int | None = Field(default=None, ge=0, le=65535)
    #: Most projects whose quota usage is exported (the ones with the smallest ids).
    quota_projects_max: int = Field(default=100, ge=0, le=10_000)
    #: Seconds a database-derived gauge (outbox, runs, quotas) is reused between scrapes.
    gauges_refresh_seconds: float = Field(default=15.0, ge=0)


class TracingSettings(BaseModel):
    """OpenTelemetry traces, exported over OTLP/HTTP (protobuf) when ``enabled``."""

    enabled: bool = False
    #: The OTLP/HTTP traces URL (a collector's ``/v1/traces``).
    endpoint: str = "http://127.0.0.1:4318/v1/traces"
    #: Headers sent with every export (e.g. an authorization header of the collector).
    headers: dict[str, str] = Field(default_factory=dict)
    #: Share of new traces sampled (a request that arrives in a sampled trace stays sampled).
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    service_name: str = "moorage"


class LogSettings(BaseModel):
    """Log lines: JSON for machines or a console format for people."""

    #: ``None``: JSON, except under ``moorage dev`` (console).
    format: Literal["json", "console"] | None = None
    level: str = "INFO"
    #: One access-log line per HTTP request (logger ``moorage.access``).
    access: bool = True


class ObservabilitySettings(BaseModel):
    """Metrics, traces and logs of every Moorage process."""

    metrics: MetricsSettings = MetricsSettings()
    tracing: TracingSettings = TracingSettings()
    logs: LogSettings = LogSettings()
    #: Seconds between the readiness checks behind the gRPC health status.
    health_interval_seconds: float = Field(default=5.0, gt=0)
