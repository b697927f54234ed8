"""Management API: a project's immutability and retention rules, retention runs and quota.

Routes under ``/api/v1/projects/{p}/``. Project admins and maintainers manage
immutability rules; admins, maintainers and developers manage retention and run it
(Harbor's matrix, ``core.rbac``); every member may read the quota, only system
administrators set it. A project the caller cannot read answers 404 like a missing one.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar import Controller, Request, Response, get, post, put
from litestar.params import FromPath, JSONBody
from pydantic import BaseModel

from api.context import identity_of, registry_of
from api.controllers.gc import GcRunOut
from api.principal import api_caller, require_caller
from api.run_control import run_control_of
from core.access import Identity
from core.policies import ImmutabilityPolicy
from core.retention import RetentionPolicy
from core.services.gc_runs import GcRunService
from core.services.immutability import IMMUTABILITY
from core.services.policies import PolicyService, ProjectPolicies
from core.services.quota import QUOTA, QuotaLimits
from core.services.retention import RETENTION


class QuotaOut(BaseModel):
    bytes: int | None
    artifacts: int | None
    used_bytes: int
    used_artifacts: int


def _service(request: Request[Any, Any, Any]) -> ProjectPolicies:
    registry = registry_of(request)
    return ProjectPolicies(
        PolicyService(registry.metadata),
        GcRunService(registry.metadata),
        identity_of(registry).access,
    )


async def _load(request: Request[Any, Any, Any], project: str, kind: str) -> str | None:
    """A project's stored policy document of ``kind``, if the caller may read it."""
    caller = await api_caller(request, registry_of(request))
    body: str | None = await anyio.to_thread.run_sync(_service(request).read, caller, project, kind)
    return body


async def _store(
    request: Request[Any, Any, Any], project: str, kind: str, policy: BaseModel
) -> None:
    """Replace a project's policy document of ``kind``, if the caller may."""
    caller = await require_caller(request, registry_of(request))
    body = policy.model_dump_json()
    await anyio.to_thread.run_sync(_service(request).write, caller, project, kind, body)


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
        caller = await api_caller(request, registry_of(request))
        return await anyio.to_thread.run_sync(_quota, _service(request), caller, project)

    @put("/quota", summary="Set the quota of a project (null: unlimited)")
    async def write_quota(
        self, request: Request[Any, Any, Any], project: FromPath[str], data: JSONBody[QuotaLimits]
    ) -> QuotaOut:
        caller = await require_caller(request, registry_of(request))
        service = _service(request)
        body = data.model_dump_json()
        await anyio.to_thread.run_sync(service.write_quota, caller, project, body)
        return await anyio.to_thread.run_sync(_quota, service, caller, project)

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
        caller = await require_caller(request, registry_of(request))
        service = _service(request)
        run = await anyio.to_thread.run_sync(
            lambda: service.request_retention(caller, project, dry_run=data.dry_run)
        )
        return Response(content=GcRunOut.of(run), status_code=202)

    @get("/retention/runs", summary="History of retention runs of a project, newest first")
    async def list_retention_runs(
        self, request: Request[Any, Any, Any], project: FromPath[str]
    ) -> list[GcRunOut]:
        caller = await api_caller(request, registry_of(request))
        service = _service(request)
        found = await anyio.to_thread.run_sync(service.retention_runs, caller, project, 50)
        found = await run_control_of(registry_of(request)).reconciled_all(found)
        return [GcRunOut.of(run) for run in found]

    @get("/retention/runs/{run_id:str}", summary="State and report of a retention run")
    async def read_retention_run(
        self, request: Request[Any, Any, Any], project: FromPath[str], run_id: FromPath[str]
    ) -> GcRunOut:
        caller = await api_caller(request, registry_of(request))
        service = _service(request)
        run = await anyio.to_thread.run_sync(service.retention_run, caller, project, run_id)
        return GcRunOut.of(await run_control_of(registry_of(request)).reconciled(run))

    @post("/retention/runs/{run_id:str}/cancel", summary="Cancel a retention run", status_code=200)
    async def cancel_retention_run(
        self, request: Request[Any, Any, Any], project: FromPath[str], run_id: FromPath[str]
    ) -> GcRunOut:
        caller = await require_caller(request, registry_of(request))
        service = _service(request)
        run = await anyio.to_thread.run_sync(service.retention_run_to_run, caller, project, run_id)
        control = run_control_of(registry_of(request))
        return GcRunOut.of(await control.cancel(run, caller.subject))


class RunIn(BaseModel):
    dry_run: bool = False


def _quota(service: ProjectPolicies, caller: Identity, project: str) -> QuotaOut:
    limits = QuotaLimits.load(service.read(caller, project, QUOTA))
    usage = service.usage(caller, project)
    return QuotaOut(
        bytes=limits.bytes,
        artifacts=limits.artifacts,
        used_bytes=usage.bytes,
        used_artifacts=usage.artifacts,
    )
