"""Management API: P2P provider instances and per-project preheat policies and executions.

``/api/v1/p2p/instances`` (system administrators): Dragonfly or Kraken instances; the
secret is write-only (``has_secret`` says whether one is stored) and ``POST
.../{id}/health`` asks the provider's health endpoint now. Endpoints are checked against
the outbound policy when written and at every call. As in Harbor, ``default`` makes an
instance the one a policy written without ``instance`` uses (setting it on one instance
clears it on the others), ``insecure`` skips the TLS certificate check of its calls, and
``auth_mode`` takes Harbor's names too (``NONE``, ``BASIC``, ``OAUTH``; answered as
``none``, ``basic``, ``bearer``).

``/api/v1/projects/{p}/preheat/policies`` (``preheat-policy`` rights: project
administrators): ``POST .../{id}/executions`` starts a manual run and answers the
execution (``202``); ``/api/v1/projects/{p}/preheat/executions`` lists the runs, one by
id, and ``.../tasks`` each candidate's result (provider job id, per-peer results). Every
run is a Temporal workflow whose id is the execution's id.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import anyio.to_thread
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from pydantic import BaseModel, ConfigDict, Field, field_validator

from activities.search_attributes import search_values
from api.context import Registry, registry_of
from api.execution_out import ExecutionOut
from api.guards import system_admin
from api.pagination import IDS, NEWEST_FIRST, Page, PageParams
from api.principal import api_caller, require_caller
from core.execution_reconcile import ExecutionReconciler
from core.execution_stop import ExecutionStopper
from core.paging import window
from core.preheat import (
    EXECUTION_WORKFLOW,
    AuthMode,
    Criteria,
    Execution,
    Instance,
    InstanceInput,
    Policy,
    PolicyInput,
    ProviderClient,
    ProviderError,
    ProviderRefusedError,
    Scope,
    Task,
    TriggerKind,
    Vendor,
    parse_auth_mode,
)
from core.preheat_service import PreheatService
from core.workflow_port import WorkflowStarter


class InstanceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=63)
    description: str = Field(default="", max_length=1024)
    vendor: Vendor
    endpoint: str = Field(min_length=1, max_length=2048)
    auth_mode: AuthMode = AuthMode.NONE
    username: str = Field(default="", max_length=255)
    #: Write-only; on update ``None`` keeps the stored one.
    secret: str | None = Field(default=None, max_length=4096)
    enabled: bool = True
    #: The instance policies use when they name none (at most one instance is).
    default: bool = False
    #: Do not verify the provider's TLS certificate (self-signed or untrusted).
    insecure: bool = False

    _auth_mode = field_validator("auth_mode", mode="before")(parse_auth_mode)

    def value(self) -> InstanceInput:
        values = self.model_dump(exclude={"default"})
        return InstanceInput(**values, is_default=self.default)


class InstanceOut(BaseModel):
    id: int
    name: str
    description: str
    vendor: str
    endpoint: str
    auth_mode: str
    username: str
    has_secret: bool
    enabled: bool
    default: bool
    insecure: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, instance: Instance) -> InstanceOut:
        return cls(
            id=instance.id,
            name=instance.name,
            description=instance.description,
            vendor=str(instance.vendor),
            endpoint=instance.endpoint,
            auth_mode=str(instance.auth_mode),
            username=instance.username,
            has_secret=instance.secret_sealed is not None,
            enabled=instance.enabled,
            default=instance.is_default,
            insecure=instance.insecure,
            created_at=instance.created_at,
            updated_at=instance.updated_at,
        )


class HealthOut(BaseModel):
    healthy: bool
    detail: str


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=63)
    description: str = Field(default="", max_length=1024)
    #: The provider instance's name (empty: the default instance).
    instance: str = Field(default="", max_length=63)
    repositories: str = Field(default="**", max_length=255)
    tags: str = Field(default="**", max_length=255)
    signed_only: bool = False
    severity: str | None = Field(default=None, max_length=16)
    trigger: TriggerKind = TriggerKind.MANUAL
    cron: str | None = Field(default=None, max_length=128)
    scope: Scope = Scope.SINGLE_SEED_PEER
    cluster_ids: list[int] = Field(default_factory=list, max_length=64)
    enabled: bool = True

    def value(self) -> PolicyInput:
        values = self.model_dump()
        values["cluster_ids"] = tuple(self.cluster_ids)
        return PolicyInput(**values)


class CriteriaOut(BaseModel):
    """Criteria the project imposes on every policy (Harbor's inherited criteria)."""

    signed_only: bool
    severity: str | None


class PolicyOut(BaseModel):
    id: int
    project: str
    name: str
    description: str
    instance: str
    repositories: str
    tags: str
    signed_only: bool
    severity: str | None
    trigger: str
    cron: str | None
    scope: str
    cluster_ids: list[int]
    enabled: bool
    #: From the project's trust and scan policies; applied with the policy's own.
    project_criteria: CriteriaOut
    created_by: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, policy: Policy, instance: str, inherited: Criteria) -> PolicyOut:
        return cls(
            id=policy.id,
            project=policy.project,
            name=policy.name,
            description=policy.description,
            instance=instance,
            repositories=policy.repositories,
            tags=policy.tags,
            signed_only=policy.signed_only,
            severity=policy.severity,
            trigger=str(policy.trigger),
            cron=policy.cron,
            scope=str(policy.scope),
            cluster_ids=list(policy.cluster_ids),
            enabled=policy.enabled,
            project_criteria=CriteriaOut(
                signed_only=inherited.signed_only, severity=inherited.severity
            ),
            created_by=policy.created_by,
            created_at=policy.created_at,
            updated_at=policy.updated_at,
        )


class PeerOut(BaseModel):
    ok: bool
    hostname: str
    ip: str
    url: str
    description: str
    cluster_id: int | None


class TaskOut(BaseModel):
    id: int
    repository: str
    tag: str
    digest: str
    status: str
    job_id: str | None
    peers_succeeded: int
    peers_failed: int
    peers: list[PeerOut]
    error: str | None
    finished_at: datetime | None

    @classmethod
    def of(cls, task: Task) -> TaskOut:
        return cls(
            id=task.id,
            repository=task.repository,
            tag=task.tag,
            digest=task.digest,
            status=str(task.status),
            job_id=task.job_id,
            peers_succeeded=task.peers_succeeded,
            peers_failed=task.peers_failed,
            peers=[
                PeerOut(
                    ok=p.ok,
                    hostname=p.hostname,
                    ip=p.ip,
                    url=p.url,
                    description=p.description,
                    cluster_id=p.cluster_id,
                )
                for p in task.peers
            ],
            error=task.error,
            finished_at=task.finished_at,
        )


class InstancePage(Page[InstanceOut]):
    """Provider instances, by id."""


class PolicyPage(Page[PolicyOut]):
    """A project's preheat policies, by id."""


class ExecutionPage(Page[ExecutionOut]):
    """Executions, newest first."""


class TaskPage(Page[TaskOut]):
    """An execution's candidates, by id."""


def preheat_of(registry: Registry) -> PreheatService:
    service = registry.extras.get("preheat")
    if not isinstance(service, PreheatService):
        raise TypeError("the registry was built without preheat")
    return service


def _service(request: Request[Any, Any, Any]) -> PreheatService:
    return preheat_of(registry_of(request))


def _reconciler(request: Request[Any, Any, Any]) -> ExecutionReconciler[Execution]:
    """Closes executions whose workflow ended without closing them (on every read)."""
    found: ExecutionReconciler[Execution] = registry_of(request).extras["preheat_reconciler"]
    return found


def _stopper(request: Request[Any, Any, Any]) -> ExecutionStopper[Execution]:
    """Stops executions (``core.execution_stop``)."""
    found: ExecutionStopper[Execution] = registry_of(request).extras["preheat_stopper"]
    return found


async def _sync_schedule(registry: Registry, before: Policy | None, after: Policy | None) -> None:
    """Keep the policy's Temporal schedule in line with it (``PolicySchedules.follow``)."""
    schedules = registry.extras.get("preheat_schedules")
    if schedules is not None:
        await schedules.follow(before, after)


async def start_run(registry: Registry, policy: Policy, trigger: TriggerKind) -> Execution:
    """Record an execution of ``policy`` and start its workflow (a failed start is recorded)."""
    service = preheat_of(registry)
    run = await anyio.to_thread.run_sync(service.new_execution, policy, trigger)
    starter: WorkflowStarter = registry.extras["preheat_starter"]
    try:
        await starter.start(
            EXECUTION_WORKFLOW,
            run,
            run.execution_id,
            search=search_values(policy=policy.name, project=policy.project),
        )
    except Exception as exc:
        await anyio.to_thread.run_sync(service.start_failed, run.execution_id, str(exc))
        raise
    found = await anyio.to_thread.run_sync(service.store.execution, run.execution_id)
    assert found is not None  # noqa: S101 - recorded just above
    return found


async def _policy_out(service: PreheatService, policy: Policy) -> PolicyOut:
    def read() -> PolicyOut:
        name = service.instance_name(policy)
        return PolicyOut.of(policy, name, service.project_criteria(policy))

    return await anyio.to_thread.run_sync(read)


def _id(item: Instance | Policy | Task) -> int:
    return item.id


def _newest(execution: Execution) -> tuple[datetime, str]:
    return (execution.started_at, execution.id)


class P2pInstanceController(Controller):
    path = "/api/v1/p2p/instances"
    tags = ["preheat"]  # noqa: RUF012
    guards = [system_admin]  # noqa: RUF012

    @get("/", summary="P2P provider instances, by id")
    async def list_instances(
        self, request: Request[Any, Any, Any], page: NamedDependency[PageParams]
    ) -> Response[InstancePage]:
        service = _service(request)

        def fetch(after: int | None, count: int) -> list[Instance]:
            return window(service.instances(), _id, after, count)

        found = await page.fetch(fetch, key=_id, cursor=IDS)
        return found.respond(request, InstancePage, [InstanceOut.of(i) for i in found.items])

    @post("/", summary="Add a P2P provider instance", status_code=201)
    async def create_instance(
        self, request: Request[Any, Any, Any], data: JSONBody[InstanceIn]
    ) -> InstanceOut:
        service = _service(request)
        return InstanceOut.of(await anyio.to_thread.run_sync(service.create_instance, data.value()))

    @get("/{instance_id:int}", summary="One P2P provider instance")
    async def read_instance(
        self, request: Request[Any, Any, Any], instance_id: FromPath[int]
    ) -> InstanceOut:
        service = _service(request)
        return InstanceOut.of(await anyio.to_thread.run_sync(service.instance, instance_id))

    @put("/{instance_id:int}", summary="Replace a P2P provider instance")
    async def replace_instance(
        self,
        request: Request[Any, Any, Any],
        instance_id: FromPath[int],
        data: JSONBody[InstanceIn],
    ) -> InstanceOut:
        service = _service(request)
        changed = await anyio.to_thread.run_sync(service.update_instance, instance_id, data.value())
        return InstanceOut.of(changed)

    @delete("/{instance_id:int}", summary="Remove an instance no policy uses", status_code=204)
    async def delete_instance(
        self, request: Request[Any, Any, Any], instance_id: FromPath[int]
    ) -> None:
        await anyio.to_thread.run_sync(_service(request).delete_instance, instance_id)

    @post(
        "/{instance_id:int}/health",
        summary="Ask the provider's health endpoint now",
        status_code=200,
    )
    async def check_health(
        self, request: Request[Any, Any, Any], instance_id: FromPath[int]
    ) -> HealthOut:
        registry = registry_of(request)
        service = preheat_of(registry)
        instance = await anyio.to_thread.run_sync(service.instance, instance_id)
        secret = await anyio.to_thread.run_sync(service.open_secret, instance)
        providers: Callable[[Instance, str | None], ProviderClient]
        providers = registry.extras["preheat_providers"]
        client = providers(instance, secret)
        try:
            healthy, detail = await client.health()
        except (ProviderError, ProviderRefusedError) as exc:
            return HealthOut(healthy=False, detail=str(exc))
        return HealthOut(healthy=healthy, detail=detail)


class PreheatPolicyController(Controller):
    path = "/api/v1/projects/{project:str}/preheat/policies"
    tags = ["preheat"]  # noqa: RUF012

    @get("/", summary="A project's preheat policies")
    async def list_policies(
        self,
        request: Request[Any, Any, Any],
        project: FromPath[str],
        page: NamedDependency[PageParams],
    ) -> Response[PolicyPage]:
        caller = await api_caller(request, registry_of(request))
        service = _service(request)
        policies = await anyio.to_thread.run_sync(service.policies, caller, project)

        def fetch(after: int | None, count: int) -> list[Policy]:
            return window(policies, _id, after, count)

        found = await page.fetch(fetch, key=_id, cursor=IDS)
        names = {i.id: i.name for i in await anyio.to_thread.run_sync(service.instances)}
        inherited = (
            await anyio.to_thread.run_sync(service.project_criteria, found.items[0])
            if found.items
            else Criteria()
        )
        items = [PolicyOut.of(p, names.get(p.instance_id, ""), inherited) for p in found.items]
        return found.respond(request, PolicyPage, items)

    @post("/", summary="Add a preheat policy", status_code=201)
    async def create_policy(
        self, request: Request[Any, Any, Any], project: FromPath[str], data: JSONBody[PolicyIn]
    ) -> PolicyOut:
        registry = registry_of(request)
        caller = await require_caller(request, registry)
        service = preheat_of(registry)
        policy = await anyio.to_thread.run_sync(
            service.create_policy, caller, project, data.value()
        )
        try:
            await _sync_schedule(registry, None, policy)
        except BaseException:
            # NOTE: a policy whose schedule could not be made is not kept half-created
            await anyio.to_thread.run_sync(service.delete_policy, caller, project, policy.id)
            raise
        return await _policy_out(service, policy)

    @get("/{policy_id:int}", summary="One preheat policy")
    async def read_policy(
        self, request: Request[Any, Any, Any], project: FromPath[str], policy_id: FromPath[int]
    ) -> PolicyOut:
        caller = await api_caller(request, registry_of(request))
        service = _service(request)
        policy = await anyio.to_thread.run_sync(service.policy, caller, project, policy_id)
        return await _policy_out(service, policy)

    @put("/{policy_id:int}", summary="Replace a preheat policy")
    async def replace_policy(
        self,
        request: Request[Any, Any, Any],
        project: FromPath[str],
        policy_id: FromPath[int],
        data: JSONBody[PolicyIn],
    ) -> PolicyOut:
        registry = registry_of(request)
        caller = await require_caller(request, registry)
        service = preheat_of(registry)
        before = await anyio.to_thread.run_sync(service.policy, caller, project, policy_id)
        policy = await anyio.to_thread.run_sync(
            service.update_policy, caller, project, policy_id, data.value()
        )
        await _sync_schedule(registry, before, policy)
        return await _policy_out(service, policy)

    @delete("/{policy_id:int}", summary="Remove a preheat policy", status_code=204)
    async def delete_policy(
        self, request: Request[Any, Any, Any], project: FromPath[str], policy_id: FromPath[int]
    ) -> None:
        registry = registry_of(request)
        caller = await require_caller(request, registry)
        service = preheat_of(registry)
        before = await anyio.to_thread.run_sync(service.delete_policy, caller, project, policy_id)
        await _sync_schedule(registry, before, None)

    @post(
        "/{policy_id:int}/executions", summary="Run a policy now (manual trigger)", status_code=202
    )
    async def run_policy(
        self, request: Request[Any, Any, Any], project: FromPath[str], policy_id: FromPath[int]
    ) -> ExecutionOut:
        registry = registry_of(request)
        caller = await require_caller(request, registry)
        service = preheat_of(registry)
        policy = await anyio.to_thread.run_sync(service.runnable, caller, project, policy_id)
        return ExecutionOut.of(await start_run(registry, policy, TriggerKind.MANUAL))


class PreheatExecutionController(Controller):
    path = "/api/v1/projects/{project:str}/preheat/executions"
    tags = ["preheat"]  # noqa: RUF012

    @get("/", summary="A project's preheat executions, newest first")
    async def list_executions(
        self,
        request: Request[Any, Any, Any],
        project: FromPath[str],
        page: NamedDependency[PageParams],
        policy_id: FromQuery[int | None] = None,
    ) -> Response[ExecutionPage]:
        caller = await api_caller(request, registry_of(request))
        service = _service(request)
        executions = await anyio.to_thread.run_sync(service.executions, caller, project, policy_id)

        def fetch(after: tuple[datetime, str] | None, count: int) -> list[Execution]:
            return window(executions, _newest, after, count, descending=True)

        found = await page.fetch(fetch, key=_newest, cursor=NEWEST_FIRST)
        items = await _reconciler(request).reconciled(found.items)
        return found.respond(request, ExecutionPage, [ExecutionOut.of(e) for e in items])

    @get("/{execution_id:str}", summary="One preheat execution")
    async def read_execution(
        self, request: Request[Any, Any, Any], project: FromPath[str], execution_id: FromPath[str]
    ) -> ExecutionOut:
        caller = await api_caller(request, registry_of(request))
        service = _service(request)
        found = await anyio.to_thread.run_sync(service.execution, caller, project, execution_id)
        return ExecutionOut.of(await _reconciler(request).one(found))

    @post(
        "/{execution_id:str}/stop",
        summary="Stop a running execution (it settles as stopped)",
        status_code=202,
    )
    async def stop_execution(
        self, request: Request[Any, Any, Any], project: FromPath[str], execution_id: FromPath[str]
    ) -> ExecutionOut:
        registry = registry_of(request)
        caller = await require_caller(request, registry)
        service = preheat_of(registry)
        await anyio.to_thread.run_sync(service.stoppable, caller, project, execution_id)
        return ExecutionOut.of(await _stopper(request).stop(execution_id, caller.subject))

    @get("/{execution_id:str}/tasks", summary="An execution's candidates and their results")
    async def list_tasks(
        self,
        request: Request[Any, Any, Any],
        project: FromPath[str],
        execution_id: FromPath[str],
        page: NamedDependency[PageParams],
    ) -> Response[TaskPage]:
        caller = await api_caller(request, registry_of(request))
        service = _service(request)
        tasks = await anyio.to_thread.run_sync(service.tasks, caller, project, execution_id)

        def fetch(after: int | None, count: int) -> list[Task]:
            return window(tasks, _id, after, count)

        found = await page.fetch(fetch, key=_id, cursor=IDS)
        return found.respond(request, TaskPage, [TaskOut.of(t) for t in found.items])
