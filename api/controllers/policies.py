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
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.types import Guard
from pydantic import BaseModel

from api.controllers.gc import GcRunOut, GcRunPage, run_page
from api.guards import project_permission, signed_in, system_admin
from api.pagination import PageParams
from api.run_control import RunControl
from core.access import Identity
from core.policies import ImmutabilityPolicy
from core.rbac import POLICY_PERMISSIONS
from core.retention import RetentionPolicy
from core.services.immutability import IMMUTABILITY
from core.services.policies import ProjectPolicies
from core.services.quota import QUOTA, QuotaLimits
from core.services.retention import RETENTION


class QuotaOut(BaseModel):
    bytes: int | None
    artifacts: int | None
    used_bytes: int
    used_artifacts: int


def _guard(kind: str, operation: str) -> Guard:
    """The guard of a policy operation (``core.rbac.POLICY_PERMISSIONS``)."""
    return project_permission(*POLICY_PERMISSIONS[(kind, operation)])


class PolicyController(Controller):
    path = "/api/v1/projects/{project:str}"
    tags = ["policies"]  # noqa: RUF012

    @get(
        "/immutability",
        summary="Tag immutability rules of a project",
        guards=[_guard(IMMUTABILITY, "read")],
    )
    async def read_immutability(
        self,
        caller: NamedDependency[Identity],
        project_policies: NamedDependency[ProjectPolicies],
        project: FromPath[str],
    ) -> ImmutabilityPolicy:
        read = project_policies.read
        return ImmutabilityPolicy.load(
            await anyio.to_thread.run_sync(read, caller, project, IMMUTABILITY)
        )

    @put(
        "/immutability",
        summary="Replace the tag immutability rules of a project",
        guards=[signed_in, _guard(IMMUTABILITY, "write")],
    )
    async def write_immutability(
        self,
        caller: NamedDependency[Identity],
        project_policies: NamedDependency[ProjectPolicies],
        project: FromPath[str],
        data: JSONBody[ImmutabilityPolicy],
    ) -> ImmutabilityPolicy:
        write = project_policies.write
        await anyio.to_thread.run_sync(write, caller, project, IMMUTABILITY, data.model_dump_json())
        return data

    @get("/quota", summary="Quota and exact usage of a project", guards=[_guard(QUOTA, "read")])
    async def read_quota(
        self,
        caller: NamedDependency[Identity],
        project_policies: NamedDependency[ProjectPolicies],
        project: FromPath[str],
    ) -> QuotaOut:
        return await anyio.to_thread.run_sync(_quota, project_policies, caller, project)

    @put(
        "/quota",
        summary="Set the quota of a project (null: unlimited)",
        guards=[signed_in, project_permission("project", "read"), system_admin],
    )
    async def write_quota(
        self,
        caller: NamedDependency[Identity],
        project_policies: NamedDependency[ProjectPolicies],
        project: FromPath[str],
        data: JSONBody[QuotaLimits],
    ) -> QuotaOut:
        body = data.model_dump_json()
        await anyio.to_thread.run_sync(project_policies.write_quota, caller, project, body)
        return await anyio.to_thread.run_sync(_quota, project_policies, caller, project)

    @get("/retention", summary="Retention rules of a project", guards=[_guard(RETENTION, "read")])
    async def read_retention(
        self,
        caller: NamedDependency[Identity],
        project_policies: NamedDependency[ProjectPolicies],
        project: FromPath[str],
    ) -> RetentionPolicy:
        read = project_policies.read
        return RetentionPolicy.load(
            await anyio.to_thread.run_sync(read, caller, project, RETENTION)
        )

    @put(
        "/retention",
        summary="Replace the retention rules of a project",
        guards=[signed_in, _guard(RETENTION, "write")],
    )
    async def write_retention(
        self,
        caller: NamedDependency[Identity],
        project_policies: NamedDependency[ProjectPolicies],
        project: FromPath[str],
        data: JSONBody[RetentionPolicy],
    ) -> RetentionPolicy:
        write = project_policies.write
        await anyio.to_thread.run_sync(write, caller, project, RETENTION, data.model_dump_json())
        return data

    @post(
        "/retention/runs",
        summary="Run retention now (or dry)",
        guards=[signed_in, _guard(RETENTION, "run")],
    )
    async def run_retention(
        self,
        caller: NamedDependency[Identity],
        project_policies: NamedDependency[ProjectPolicies],
        project: FromPath[str],
        data: JSONBody[RunIn],
    ) -> Response[GcRunOut]:
        run = await anyio.to_thread.run_sync(
            lambda: project_policies.request_retention(caller, project, dry_run=data.dry_run)
        )
        return Response(content=GcRunOut.of(run), status_code=202)

    @get(
        "/retention/runs",
        summary="History of retention runs of a project, newest first",
        guards=[_guard(RETENTION, "history")],
    )
    async def list_retention_runs(
        self,
        request: Request[Any, Any, Any],
        caller: NamedDependency[Identity],
        project_policies: NamedDependency[ProjectPolicies],
        run_control: NamedDependency[RunControl],
        project: FromPath[str],
        page: NamedDependency[PageParams],
    ) -> Response[GcRunPage]:
        history = project_policies.retention_runs
        return await run_page(
            request,
            page,
            run_control,
            lambda before, count: history(caller, project, before, count),
        )

    @get(
        "/retention/runs/{run_id:str}",
        summary="State and report of a retention run",
        guards=[_guard(RETENTION, "read")],
    )
    async def read_retention_run(
        self,
        caller: NamedDependency[Identity],
        project_policies: NamedDependency[ProjectPolicies],
        run_control: NamedDependency[RunControl],
        project: FromPath[str],
        run_id: FromPath[str],
    ) -> GcRunOut:
        read = project_policies.retention_run
        run = await anyio.to_thread.run_sync(read, caller, project, run_id)
        return GcRunOut.of(await run_control.reconciled(run))

    @post(
        "/retention/runs/{run_id:str}/cancel",
        summary="Cancel a retention run",
        status_code=200,
        guards=[signed_in, _guard(RETENTION, "run")],
    )
    async def cancel_retention_run(
        self,
        caller: NamedDependency[Identity],
        project_policies: NamedDependency[ProjectPolicies],
        run_control: NamedDependency[RunControl],
        project: FromPath[str],
        run_id: FromPath[str],
    ) -> GcRunOut:
        read = project_policies.retention_run_to_run
        run = await anyio.to_thread.run_sync(read, caller, project, run_id)
        return GcRunOut.of(await run_control.cancel(run, caller.subject))


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
