"""Prometheus exposition of the API process (``GET /metrics``)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get

from api.metrics import CONTENT_TYPE


@get("/metrics", include_in_schema=False, sync_to_thread=False)
def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Every metric of this process (of every server worker in multi-process mode)."""
    observer = request.app.state["observer"]
    if observer.metrics is None:
        return Response(b"metrics are disabled\n", status_code=404, media_type="text/plain")
    return Response(observer.metrics.render(), media_type=CONTENT_TYPE)
