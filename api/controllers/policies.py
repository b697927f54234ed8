"""Management API: a project's immutability rules and quota (``/api/v1/projects/{p}/...``)."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar import Controller, Request, Response, get, post, put
from litestar.params import FromPath, JSONBody
from pydantic import BaseModel

from api.auth import require_admin
from api.context import registry_of
from api.controllers.gc import GcRunOut
from core.errors import NotFoundError
from core.policies import ImmutabilityPolicy
from core.retention import RetentionPolicy
from core.services.gc_runs import GcRunService
from core.services.immutability import IMMUTABILITY
from core.services.policies import PolicyService
from core.services.quota import QUOTA, QuotaLimits
from core.services.retention import RETENTION


class QuotaOut(BaseModel):
    bytes: int | None
    artifacts: int | None
    used_bytes: int
    used_artifacts: int


def _service(request: Request[Any, Any, Any]) -> PolicyService:
    return PolicyService(registry_of(request).metadata)


async def _load(request: Request[Any, Any, Any], project: str, kind: str) -> str | None:
    """A project's stored policy document of ``kind``, for a system administrator."""
    await require_admin(request, registry_of(request))
    body: str | None = await anyio.to_thread.run_sync(_service(request).get, project, kind)
    return body


async def _store(
    request: Request[Any, Any, Any], project: str, kind: str, policy: BaseModel
) -> None:
    """Replace a project's policy document of ``kind``, for a system administrator."""
    await require_admin(request, registry_of(request))
    body = policy.model_dump_json()
    await anyio.to_thread.run_sync(_service(request).put, project, kind, body)


class PolicyController(Controller):
    path = "/api/v1/projects/{project:str}"
    tags = ["policies"]  # noqa: RUF012

    @get("/immutability", summary="Tag immutability rules of a project")
    async def read_immutability(
        self, request: Request[Any, Any, Any], project: FromPath[str]
    ) -> ImmutabilityPolicy:
        return ImmutabilityPolicy.load(await _load(request, project, IMMUTABILITY))

    @put("/immutability", summary="Replace the tag immutability rules of a project")
    async def write_immutability(
        self,
        request: Request[Any, Any, Any],
        project: FromPath[str],
        data: JSONBody[ImmutabilityPolicy],
    ) -> ImmutabilityPolicy:
        await _store(request, project, IMMUTABILITY, data)
        return data

    @get("/quota", summary="Quota and exact usage of a project")
    async def read_quota(self, request: Request[Any, Any, Any], project: FromPath[str]) -> QuotaOut:
        await require_admin(request, registry_of(request))
        return await anyio.to_thread.run_sync(_quota, _service(request), project)

    @put("/quota", summary="Set the quota of a project (null: unlimited)")
    async def write_quota(
        self, request: Request[Any, Any, Any], project: FromPath[str], data: JSONBody[QuotaLimits]
    ) -> QuotaOut:
        await require_admin(request, registry_of(request))
        service = _service(request)
        await anyio.to_thread.run_sync(service.put, project, QUOTA, data.model_dump_json())
        return await anyio.to_thread.run_sync(_quota, service, project)

    @get("/retention", summary="Retention rules of a project")
    async def read_retention(
        self, request: Request[Any, Any, Any], project: FromPath[str]
    ) -> RetentionPolicy:
        return RetentionPolicy.load(await _load(request, project, RETENTION))

    @put("/retention", summary="Replace the retention rules of a project")
    async def write_retention(
        self,
        request: Request[Any, Any, Any],
        project: FromPath[str],
        data: JSONBody[RetentionPolicy],
    ) -> RetentionPolicy:
        await _store(request, project, RETENTION, data)
        return data

    @post("/retention/runs", summary="Run retention now (or dry)")
    async def run_retention(
        self, request: Request[Any, Any, Any], project: FromPath[str], data: JSONBody[RunIn]
    ) -> Response[Any]:
        await require_admin(request, registry_of(request))
        runs = GcRunService(registry_of(request).metadata)
        run = await anyio.to_thread.run_sync(
            lambda: runs.request_retention(project, dry_run=data.dry_run)
        )
        return Response(content=GcRunOut.of(run), status_code=202)

    @get("/retention/runs", summary="History of retention runs of a project, newest first")
    async def list_retention_runs(
        self, request: Request[Any, Any, Any], project: FromPath[str]
    ) -> list[GcRunOut]:
        await require_admin(request, registry_of(request))
        runs = GcRunService(registry_of(request).metadata)
        found = await anyio.to_thread.run_sync(runs.history, "retention", project, 50)
        return [GcRunOut.of(run) for run in found]

    @get("/retention/runs/{run_id:str}", summary="State and report of a retention run")
    async def read_retention_run(
        self, request: Request[Any, Any, Any], project: FromPath[str], run_id: FromPath[str]
    ) -> GcRunOut:
        await require_admin(request, registry_of(request))
        runs = GcRunService(registry_of(request).metadata)
        run = await anyio.to_thread.run_sync(runs.get, run_id)
        if run.kind != "retention" or run.project != project:
            raise NotFoundError(f"retention run {run_id!r} not found")
        return GcRunOut.of(run)


class RunIn(BaseModel):
    dry_run: bool = False


def _quota(service: PolicyService, project: str) -> QuotaOut:
    limits = QuotaLimits.load(service.get(project, QUOTA))
    usage = service.usage(project)
    return QuotaOut(
        bytes=limits.bytes,
        artifacts=limits.artifacts,
        used_bytes=usage.bytes,
        used_artifacts=usage.artifacts,
    )
