"""Liveness and readiness over HTTP."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar import Request, Response, get

from api.context import registry_of


@get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", summary="Readiness: database, storage and Temporal reachable")
async def readyz(request: Request[Any, Any, Any]) -> Response[Any]:
    registry = registry_of(request)
    checks: dict[str, str] = {}
    for name, check in (("database", registry.metadata.ping), ("storage", registry.store.ping)):
        try:
            with anyio.fail_after(5):
                await anyio.to_thread.run_sync(check)
            checks[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            checks[name] = f"error: {type(exc).__name__}"
    checks["temporal"] = await registry.extras["temporal_check"]()
    ready = all(value == "ok" for value in checks.values())
    return Response(content={"ready": ready, "checks": checks}, status_code=200 if ready else 503)
