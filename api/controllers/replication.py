"""Management API: replication policies and executions (``/api/v1/replication``).

System administrators only (a policy reads or writes any project). ``POST
/api/v1/replication/policies/{id}/executions`` starts a manual run and answers with the
execution (``202``); its progress and per-artifact results are under
``/api/v1/replication/executions/{id}`` and ``.../tasks``; ``POST .../{id}/stop`` stops
a running one (``202``, it settles as ``stopped``; ``409`` once it has finished). Every
run is a Temporal workflow whose id is the execution's id, findable in the Temporal UI by
``MoorageReplicationPolicy`` (and, for each artifact's child run, by ``MoorageProject``
and ``MoorageRepository``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import anyio.to_thread
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from pydantic import BaseModel, Field

from activities.search_attributes import search_values
from api.context import Registry
from api.execution_out import ExecutionOut as PolicyExecutionOut
from api.guards import system_admin
from api.pagination import IDS, NEWEST_FIRST, Page, PageParams
from core.access import Identity
from core.execution_reconcile import ExecutionReconciler
from core.execution_stop import ExecutionStopper
from core.paging import window
from core.replication import (
    EXECUTION_WORKFLOW,
    ArtifactKind,
    Direction,
    Execution,
    PolicyInput,
    ReplicationPolicy,
    ReplicationService,
    ReplicationTask,
    ScheduleSync,
    TriggerKind,
)
from core.workflow_port import WorkflowStarter


class PolicyIn(BaseModel):
    """A policy as an administrator writes it (Harbor's replication rule)."""

    name: str = Field(max_length=63)
    description: str = Field(default="", max_length=1024)
    enabled: bool = True
    direction: Direction
    endpoint: str = Field(max_length=63)
    repositories: str = Field(default="**", max_length=255)
    tags: str = Field(default="**", max_length=255)
    artifact_kind: ArtifactKind = ArtifactKind.ALL
    referrers: bool = True
    flatten: int = Field(default=0, ge=0, le=16)
    prefix: str = Field(default="", max_length=255)
    trigger: TriggerKind = TriggerKind.MANUAL
    cron: str | None = Field(default=None, max_length=128)
    deletions: bool = False
    override: bool = True
    bandwidth_kbps: int = Field(default=0, ge=0)
    concurrency: int = Field(default=4, ge=1, le=64)

    def value(self) -> PolicyInput:
        return PolicyInput(**self.model_dump())


class PolicyOut(PolicyIn):
    id: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, policy: ReplicationPolicy) -> PolicyOut:
        return cls(
            id=policy.id,
            name=policy.name,
            description=policy.description,
            enabled=policy.enabled,
            direction=policy.direction,
            endpoint=policy.endpoint,
            repositories=policy.repositories,
            tags=policy.tags,
            artifact_kind=policy.artifact_kind,
            referrers=policy.referrers,
            flatten=policy.flatten,
            prefix=policy.prefix,
            trigger=policy.trigger,
            cron=policy.cron,
            deletions=policy.deletions,
            override=policy.override,
            bandwidth_kbps=policy.bandwidth_kbps,
            concurrency=policy.concurrency,
            created_at=policy.created_at,
            updated_at=policy.updated_at,
        )


class ExecutionOut(PolicyExecutionOut):
    skipped: int


class TaskOut(BaseModel):
    id: int
    operation: str
    source: str
    destination: str
    reference: str
    digest: str | None
    status: str
    bytes_sent: int
    blobs_copied: int
    blobs_skipped: int
    error: str | None
    finished_at: datetime | None

    @classmethod
    def of(cls, task: ReplicationTask) -> TaskOut:
        return cls(
            id=task.id,
            operation=str(task.operation),
            source=task.source,
            destination=task.destination,
            reference=task.reference,
            digest=task.digest,
            status=str(task.status),
            bytes_sent=task.bytes_sent,
            blobs_copied=task.blobs_copied,
            blobs_skipped=task.blobs_skipped,
            error=task.error,
            finished_at=task.finished_at,
        )


class PolicyPage(Page[PolicyOut]):
    """Replication policies, by id."""


class ExecutionPage(Page[ExecutionOut]):
    """Executions, newest first."""


class TaskPage(Page[TaskOut]):
    """An execution's tasks, by id."""


def replication_of(registry: Registry) -> ReplicationService:
    service = registry.extras.get("replication")
    if not isinstance(service, ReplicationService):
        raise TypeError("the registry was built without replication")
    return service


def stopper_of(registry: Registry) -> ExecutionStopper[Execution]:
    stopper = registry.extras.get("replication_stopper")
    if not isinstance(stopper, ExecutionStopper):
        raise TypeError("the registry was built without replication")
    return cast("ExecutionStopper[Execution]", stopper)


def _reconciler(registry: Registry) -> ExecutionReconciler[Execution]:
    """Closes executions whose workflow ended without closing them (on every read)."""
    found: ExecutionReconciler[Execution] = registry.extras["replication_reconciler"]
    return found


def _starter(registry: Registry) -> WorkflowStarter:
    starter: WorkflowStarter = registry.extras["replication_starter"]
    return starter


def _schedules(registry: Registry) -> ScheduleSync | None:
    found: ScheduleSync | None = registry.extras.get("replication_schedules")
    return found


async def _sync_schedule(
    registry: Registry, before: ReplicationPolicy | None, after: ReplicationPolicy | None
) -> None:
    """Keep the policy's Temporal schedule in line with it (``PolicySchedules.follow``)."""
    schedules = _schedules(registry)
    if schedules is not None:
        await schedules.follow(before, after)


async def start_run(
    registry: Registry, policy: ReplicationPolicy, trigger: TriggerKind
) -> Execution:
    """Record an execution of ``policy`` and start its workflow (a failed start is recorded)."""
    service = replication_of(registry)
    request = await anyio.to_thread.run_sync(service.new_execution, policy, trigger)
    try:
        await _starter(registry).start(
            EXECUTION_WORKFLOW,
            request,
            request.execution_id,
            search=search_values(policy=policy.name),
        )
    except Exception as exc:
        await anyio.to_thread.run_sync(service.start_failed, request.execution_id, str(exc))
        raise
    return await anyio.to_thread.run_sync(service.execution, request.execution_id)


def _id(policy: ReplicationPolicy) -> int:
    return policy.id


def _newest(execution: Execution) -> tuple[datetime, str]:
    return (execution.started_at, execution.id)


def _task_id(task: ReplicationTask) -> int:
    return task.id


class ReplicationPolicyController(Controller):
    path = "/api/v1/replication/policies"
    tags = ["replication"]  # noqa: RUF012
    guards = [system_admin]  # noqa: RUF012

    @get("/", summary="Replication policies, by id")
    async def list_policies(
        self,
        request: Request[Any, Any, Any],
        registry: NamedDependency[Registry],
        page: NamedDependency[PageParams],
    ) -> Response[PolicyPage]:
        service = replication_of(registry)

        def fetch(after: int | None, count: int) -> list[ReplicationPolicy]:
            return window(service.policies(), _id, after, count)

        found = await page.fetch(fetch, key=_id, cursor=IDS)
        return found.respond(request, PolicyPage, [PolicyOut.of(p) for p in found.items])

    @post("/", summary="Add a replication policy", status_code=201)
    async def create_policy(
        self, registry: NamedDependency[Registry], data: JSONBody[PolicyIn]
    ) -> PolicyOut:
        service = replication_of(registry)
        policy = await anyio.to_thread.run_sync(service.create, data.value())
        try:
            await _sync_schedule(registry, None, policy)
        except BaseException:
            # NOTE: a policy whose schedule could not be made is not kept half-created
            await anyio.to_thread.run_sync(service.delete, policy.id)
            raise
        return PolicyOut.of(policy)

    @get("/{policy_id:int}", summary="One replication policy")
    async def read_policy(
        self, registry: NamedDependency[Registry], policy_id: FromPath[int]
    ) -> PolicyOut:
        service = replication_of(registry)
        return PolicyOut.of(await anyio.to_thread.run_sync(service.get, policy_id))

    @put("/{policy_id:int}", summary="Replace a replication policy")
    async def replace_policy(
        self,
        registry: NamedDependency[Registry],
        policy_id: FromPath[int],
        data: JSONBody[PolicyIn],
    ) -> PolicyOut:
        service = replication_of(registry)
        before = await anyio.to_thread.run_sync(service.get, policy_id)
        policy = await anyio.to_thread.run_sync(service.update, policy_id, data.value())
        await _sync_schedule(registry, before, policy)
        return PolicyOut.of(policy)

    @delete("/{policy_id:int}", summary="Remove a replication policy", status_code=204)
    async def delete_policy(
        self, registry: NamedDependency[Registry], policy_id: FromPath[int]
    ) -> None:
        service = replication_of(registry)
        before = await anyio.to_thread.run_sync(service.get, policy_id)
        await anyio.to_thread.run_sync(service.delete, policy_id)
        await _sync_schedule(registry, before, None)

    @post(
        "/{policy_id:int}/executions",
        summary="Run a policy now (manual trigger)",
        status_code=202,
    )
    async def run_policy(
        self, registry: NamedDependency[Registry], policy_id: FromPath[int]
    ) -> ExecutionOut:
        policy = await anyio.to_thread.run_sync(replication_of(registry).get, policy_id)
        return ExecutionOut.of(await start_run(registry, policy, TriggerKind.MANUAL))


class ReplicationExecutionController(Controller):
    path = "/api/v1/replication/executions"
    tags = ["replication"]  # noqa: RUF012
    guards = [system_admin]  # noqa: RUF012

    @get("/", summary="Executions, newest first (optionally of one policy)")
    async def list_executions(
        self,
        request: Request[Any, Any, Any],
        registry: NamedDependency[Registry],
        page: NamedDependency[PageParams],
        policy_id: FromQuery[int | None] = None,
    ) -> Response[ExecutionPage]:
        service = replication_of(registry)

        def fetch(after: tuple[datetime, str] | None, count: int) -> list[Execution]:
            return window(service.executions(policy_id), _newest, after, count, descending=True)

        found = await page.fetch(fetch, key=_newest, cursor=NEWEST_FIRST)
        items = await _reconciler(registry).reconciled(found.items)
        return found.respond(request, ExecutionPage, [ExecutionOut.of(e) for e in items])

    @get("/{execution_id:str}", summary="One execution")
    async def read_execution(
        self, registry: NamedDependency[Registry], execution_id: FromPath[str]
    ) -> ExecutionOut:
        service = replication_of(registry)
        execution = await anyio.to_thread.run_sync(service.execution, execution_id)
        return ExecutionOut.of(await _reconciler(registry).one(execution))

    @post(
        "/{execution_id:str}/stop",
        summary="Stop a running execution (it settles as stopped)",
        status_code=202,
    )
    async def stop_execution(
        self,
        caller: NamedDependency[Identity],
        registry: NamedDependency[Registry],
        execution_id: FromPath[str],
    ) -> ExecutionOut:
        stopper = stopper_of(registry)
        return ExecutionOut.of(await stopper.stop(execution_id, caller.subject))

    @get("/{execution_id:str}/tasks", summary="An execution's per-artifact results")
    async def list_tasks(
        self,
        request: Request[Any, Any, Any],
        registry: NamedDependency[Registry],
        page: NamedDependency[PageParams],
        execution_id: FromPath[str],
    ) -> Response[TaskPage]:
        service = replication_of(registry)

        def fetch(after: int | None, count: int) -> list[ReplicationTask]:
            return window(service.tasks(execution_id), _task_id, after, count)

        found = await page.fetch(fetch, key=_task_id, cursor=IDS)
        return found.respond(request, TaskPage, [TaskOut.of(t) for t in found.items])
