"""Management API: garbage collection runs (``/api/v1/system/gc``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio.to_thread
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from pydantic import BaseModel, Field

from api.guards import system_admin
from api.pagination import NEWEST_FIRST, Page, PageParams
from api.run_control import RunControl
from core.access import Identity
from core.control_records import GcRunRecord
from core.services.gc_runs import GcRunService, RunKey, run_key


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


class GcRunPage(Page[GcRunOut]):
    """Runs, newest first."""


async def run_page(
    request: Request[Any, Any, Any],
    page: PageParams,
    run_control: RunControl,
    fetch: Callable[[RunKey | None, int], list[GcRunRecord]],
) -> Response[GcRunPage]:
    """A page of a run history, each pending run first settled with its workflow."""
    window = await page.fetch(fetch, key=run_key, cursor=NEWEST_FIRST)
    runs = await run_control.reconciled_all(window.items)
    return window.respond(request, GcRunPage, [GcRunOut.of(run) for run in runs])


class GcController(Controller):
    path = "/api/v1/system/gc"
    tags = ["gc"]  # noqa: RUF012
    guards = [system_admin]  # noqa: RUF012

    @post("/", summary="Request a garbage-collection run")
    async def request_run(
        self, gc_runs: NamedDependency[GcRunService], data: JSONBody[GcRequest]
    ) -> Response[GcRunOut]:
        run = await anyio.to_thread.run_sync(
            lambda: gc_runs.request(
                dry_run=data.dry_run,
                delete_untagged=data.delete_untagged,
                review_delay_seconds=data.review_delay_seconds,
            )
        )
        return Response(content=GcRunOut.of(run), status_code=202)

    @get("/", summary="History of garbage-collection runs, newest first")
    async def list_runs(
        self,
        request: Request[Any, Any, Any],
        gc_runs: NamedDependency[GcRunService],
        run_control: NamedDependency[RunControl],
        page: NamedDependency[PageParams],
    ) -> Response[GcRunPage]:
        return await run_page(
            request,
            page,
            run_control,
            lambda before, count: gc_runs.page("gc", None, before, count),
        )

    @get("/{run_id:str}", summary="State and report of a garbage-collection run")
    async def read_run(
        self,
        gc_runs: NamedDependency[GcRunService],
        run_control: NamedDependency[RunControl],
        run_id: FromPath[str],
    ) -> GcRunOut:
        run = await anyio.to_thread.run_sync(gc_runs.get, run_id)
        return GcRunOut.of(await run_control.reconciled(run))

    @post("/{run_id:str}/cancel", summary="Cancel a garbage-collection run", status_code=200)
    async def cancel_run(
        self,
        caller: NamedDependency[Identity],
        gc_runs: NamedDependency[GcRunService],
        run_control: NamedDependency[RunControl],
        run_id: FromPath[str],
    ) -> GcRunOut:
        run = await anyio.to_thread.run_sync(gc_runs.get, run_id)
        return GcRunOut.of(await run_control.cancel(run, caller.subject))
