"""Liveness and readiness over HTTP.

``/livez`` (and ``/healthz``) answer 200 while the process serves. ``/readyz`` answers
200 when the data plane can work (database and blob store answer), also when Temporal
is away (``"status": "degraded"``), and 503 otherwise; ``/readyz?verbose`` lists each
dependency with its state and latency.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get

from api.context import registry_of
from api.readiness import api_dependencies
from core.readiness import check_all

#: Bound on each dependency's check.
CHECK_TIMEOUT = 5.0


@get(["/healthz", "/livez"], summary="Liveness: the process serves")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", summary="Readiness: database and blob store answer (Temporal: degraded)")
async def readyz(request: Request[Any, Any, Any]) -> Response[Any]:
    readiness = await check_all(api_dependencies(registry_of(request)), CHECK_TIMEOUT)
    content: dict[str, Any] = {"ready": readiness.ready, "status": str(readiness.status)}
    if "verbose" in request.query_params:
        content["checks"] = {result.name: result.describe() for result in readiness.results}
    return Response(content=content, status_code=200 if readiness.ready else 503)
