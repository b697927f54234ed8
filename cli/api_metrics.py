"""Metrics of ``moorage api``: one view over every server worker process.

The main process gives the workers a fresh multi-process directory
(``PROMETHEUS_MULTIPROC_DIR``, before they start) so that ``/metrics`` on any worker,
and the separate ``metrics.api_port`` listener this process serves, sum all of them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, multiprocess, start_http_server

from api.metrics import MULTIPROC_VARIABLE

if TYPE_CHECKING:
    from core.observability_settings import MetricsSettings

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def api_metrics(settings: MetricsSettings) -> Iterator[int | None]:
    """Set up multi-process metrics for the server workers; serve ``api_port`` if set.

    Yields:
        The bound metrics port, or ``None`` without a separate listener.
    """
    if not settings.enabled:
        yield None
        return
    given = os.environ.get(MULTIPROC_VARIABLE)
    directory = given or tempfile.mkdtemp(prefix="moorage-metrics-")
    os.environ[MULTIPROC_VARIABLE] = directory
    server: Any = None
    try:
        if settings.api_port is not None:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, directory)  # type: ignore[no-untyped-call]
            server, _thread = start_http_server(
                settings.api_port, addr=settings.host, registry=registry
            )
            logger.info("API metrics on http://%s:%d/metrics", settings.host, server.server_port)
        yield None if server is None else int(server.server_port)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        if given is None:
            shutil.rmtree(directory, ignore_errors=True)
            os.environ.pop(MULTIPROC_VARIABLE, None)
