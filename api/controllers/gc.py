"""Management API: garbage collection runs (``/api/v1/system/gc``)."""

from __future__ import annotations

import json
from typing import Any

import anyio.to_thread
from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, FromQuery, JSONBody
from pydantic import BaseModel, Field

from api.auth import require_admin
from api.context import registry_of
from api.run_control import run_control_of
from core.control_records import GcRunRecord
from core.services.gc_runs import GcRunService


class GcRequest(BaseModel):
    dry_run: bool = False
    delete_untagged: bool = False
    review_delay_seconds: int | None = Field(default=None, ge=0)


class GcRunOut(BaseModel):
    id: str
    state: str
    dry_run: bool
    delete_untagged: bool
    review_delay_seconds: int | None
    created_at: str
    finished_at: str | None
    report: dict[str, Any] | None

    @classmethod
    def of(cls, run: GcRunRecord) -> GcRunOut:
        return cls(
            id=run.id,
            state=run.state,
            dry_run=run.dry_run,
            delete_untagged=run.delete_untagged,
            review_delay_seconds=run.review_delay_seconds,
            created_at=run.created_at.isoformat(),
            finished_at=run.finished_at.isoformat() if run.finished_at else None,
            report=json.loads(run.report) if run.report else None,
        )


def _service(request: Request[Any, Any, Any]) -> GcRunService:
    return GcRunService(registry_of(request).metadata)


class GcController(Controller):
    path = "/api/v1/system/gc"
    tags = ["gc"]  # noqa: RUF012

    @post("/", summary="Request a garbage-collection run")
    async def request_run(
        self, request: Request[Any, Any, Any], data: JSONBody[GcRequest]
    ) -> Response[Any]:
        await require_admin(request, registry_of(request))
        run = await anyio.to_thread.run_sync(
            lambda: _service(request).request(
                dry_run=data.dry_run,
                delete_untagged=data.delete_untagged,
                review_delay_seconds=data.review_delay_seconds,
            )
        )
        return Response(content=GcRunOut.of(run), status_code=202)

    @get("/", summary="History of garbage-collection runs, newest first")
    async def list_runs(
        self, request: Request[Any, Any, Any], limit: FromQuery[int] = 20
    ) -> list[GcRunOut]:
        await require_admin(request, registry_of(request))
        limit = max(1, min(limit, 100))
        runs = await anyio.to_thread.run_sync(_service(request).history, "gc", None, limit)
        runs = await run_control_of(registry_of(request)).reconciled_all(runs)
        return [GcRunOut.of(run) for run in runs]

    @get("/{run_id:str}", summary="State and report of a garbage-collection run")
    async def read_run(self, request: Request[Any, Any, Any], run_id: FromPath[str]) -> GcRunOut:
        await require_admin(request, registry_of(request))
        run = await anyio.to_thread.run_sync(_service(request).get, run_id)
        return GcRunOut.of(await run_control_of(registry_of(request)).reconciled(run))

    @post("/{run_id:str}/cancel", summary="Cancel a garbage-collection run", status_code=200)
    async def cancel_run(self, request: Request[Any, Any, Any], run_id: FromPath[str]) -> GcRunOut:
        caller = await require_admin(request, registry_of(request))
        run = await anyio.to_thread.run_sync(_service(request).get, run_id)
        control = run_control_of(registry_of(request))
        return GcRunOut.of(await control.cancel(run, caller.subject))
