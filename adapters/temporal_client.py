"""The one way a Moorage process connects to Temporal: address, namespace, TLS, API key.

Every client (the API's workflow starter, readiness probe and run control, the outbox
dispatcher, the worker, the CLI) is made by :func:`connect_temporal`, so TLS, mTLS and
API-key settings apply to all of them. When the process has configured an OpenTelemetry
tracer provider (``cli.tracing``), the client carries Temporal's tracing interceptor:
workflows started with it, and their activities, continue the caller's trace (a worker
built from the client inherits the interceptor).
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from temporalio.client import Client
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.runtime import Runtime
from temporalio.service import TLSConfig

from core.settings import TemporalSettings


def tls_config(settings: TemporalSettings) -> TLSConfig | None:
    """The TLS options of ``settings`` (``None``: plain, or the SDK's default for API keys)."""
    tls = settings.tls
    if not tls.active:
        return None
    return TLSConfig(
        server_root_ca_cert=tls.server_ca_file.read_bytes() if tls.server_ca_file else None,
        domain=tls.server_name,
        client_cert=tls.client_cert_file.read_bytes() if tls.client_cert_file else None,
        client_private_key=tls.client_key_file.read_bytes() if tls.client_key_file else None,
    )


def tracing_configured() -> bool:
    """Whether this process set an OpenTelemetry tracer provider of its own."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def connect_options(settings: TemporalSettings, runtime: Runtime | None = None) -> dict[str, Any]:
    """The keyword arguments of ``Client.connect`` for ``settings``."""
    # NOTE: ``tls=None`` is plain TCP, or TLS with the system's roots when an API key is set.
    options: dict[str, Any] = {"namespace": settings.namespace, "tls": tls_config(settings)}
    if settings.api_key is not None:
        options["api_key"] = settings.api_key.get_secret_value()
    if runtime is not None:
        options["runtime"] = runtime
    if tracing_configured():
        options["interceptors"] = [TracingInterceptor()]
    return options


async def connect_temporal(settings: TemporalSettings, runtime: Runtime | None = None) -> Client:
    """A client connected to the cluster of ``settings``.

    Args:
        settings: Address, namespace, TLS and API key.
        runtime: The Temporal runtime (its telemetry); the SDK's default if omitted.
    """
    return await Client.connect(settings.address, **connect_options(settings, runtime))
