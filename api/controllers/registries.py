"""Management API: registry endpoints (``/api/v1/registries``) and proxy bindings.

System administrators only. An endpoint's secret is write-only: responses say whether
one is set (``has_secret``), never what it is. ``POST /api/v1/registries/{name}/health``
checks the endpoint with ``GET /v2/`` through the token flow. A project becomes a proxy
cache of an endpoint with ``PUT /api/v1/projects/{project}/proxy``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import anyio.to_thread
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from pydantic import BaseModel, Field, SecretStr

from api.context import Registry
from api.guards import system_admin
from api.pagination import NAMES, Page, PageParams
from core.endpoints import (
    CredentialKind,
    EndpointInput,
    EndpointRecord,
    EndpointService,
    EndpointType,
)
from core.errors import ConflictError, InvalidInputError
from core.paging import window
from core.proxy import PROXY, ProxyBinding, ProxyCache
from core.replication import ReplicationService
from core.services.policies import PolicyService
from core.upstream_ports import UpstreamError, UpstreamFactory

_OK = 200


class EndpointIn(BaseModel):
    """An endpoint as an administrator writes it (``secret`` is never echoed)."""

    name: str = Field(max_length=63)
    url: str = Field(max_length=2048)
    type: EndpointType = EndpointType.OCI
    credential: CredentialKind = CredentialKind.NONE
    username: str = Field(default="", max_length=255)
    secret: SecretStr | None = None
    ca_bundle: str | None = Field(default=None, max_length=256 * 1024)
    insecure: bool = False
    realm_hosts: list[str] = Field(default_factory=list, max_length=8)

    def value(self, name: str | None = None) -> EndpointInput:
        return EndpointInput(
            name=name or self.name,
            url=self.url,
            type=self.type,
            credential=self.credential,
            username=self.username,
            secret=None if self.secret is None else self.secret.get_secret_value(),
            ca_bundle=self.ca_bundle,
            insecure=self.insecure,
            realm_hosts=tuple(self.realm_hosts),
        )


class EndpointOut(BaseModel):
    name: str
    url: str
    type: EndpointType
    credential: CredentialKind
    username: str
    has_secret: bool
    ca_bundle: str | None
    insecure: bool
    realm_hosts: list[str]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, record: EndpointRecord) -> EndpointOut:
        return cls(
            name=record.name,
            url=record.url,
            type=record.type,
            credential=record.credential,
            username=record.username,
            has_secret=record.has_secret,
            ca_bundle=record.ca_bundle,
            insecure=record.insecure,
            realm_hosts=list(record.realm_hosts),
            created_at=record.created_at,
            updated_at=record.updated_at,
        )


class HealthOut(BaseModel):
    healthy: bool
    status: int | None
    reason: str | None


class ProxyIn(BaseModel):
    """A project's proxy binding: the endpoint it caches, and optional overrides."""

    endpoint: str = Field(max_length=63)
    freshness_seconds: int | None = Field(default=None, ge=0)
    serve_stale: bool | None = None


class EndpointPage(Page[EndpointOut]):
    """Registry endpoints, by name."""


class ProxyOut(BaseModel):
    endpoint: str | None
    freshness_seconds: int | None
    serve_stale: bool | None


def _endpoints(registry: Registry) -> EndpointService:
    service = registry.extras.get("endpoints")
    if not isinstance(service, EndpointService):
        raise TypeError("the registry was built without registry endpoints")
    return service


def _proxy(registry: Registry) -> ProxyCache:
    cache = registry.extras.get("proxy")
    if not isinstance(cache, ProxyCache):
        raise TypeError("the registry was built without the proxy cache")
    return cache


class RegistryController(Controller):
    path = "/api/v1/registries"
    tags = ["registries"]  # noqa: RUF012
    guards = [system_admin]  # noqa: RUF012

    @get("/", summary="Registry endpoints, by name")
    async def list_endpoints(
        self,
        request: Request[Any, Any, Any],
        registry: NamedDependency[Registry],
        page: NamedDependency[PageParams],
    ) -> Response[EndpointPage]:
        service = _endpoints(registry)

        def fetch(after: str | None, count: int) -> list[EndpointRecord]:
            return window(service.list(), _name, after, count)

        found = await page.fetch(fetch, key=_name, cursor=NAMES)
        return found.respond(request, EndpointPage, [EndpointOut.of(r) for r in found.items])

    @post("/", summary="Add a registry endpoint", status_code=201)
    async def create_endpoint(
        self, registry: NamedDependency[Registry], data: JSONBody[EndpointIn]
    ) -> EndpointOut:
        record = await anyio.to_thread.run_sync(_endpoints(registry).create, data.value())
        return EndpointOut.of(record)

    @get("/{name:str}", summary="One registry endpoint")
    async def read_endpoint(
        self, registry: NamedDependency[Registry], name: FromPath[str]
    ) -> EndpointOut:
        return EndpointOut.of(await anyio.to_thread.run_sync(_endpoints(registry).get, name))

    @put("/{name:str}", summary="Replace a registry endpoint (no secret: keep the stored one)")
    async def replace_endpoint(
        self, registry: NamedDependency[Registry], name: FromPath[str], data: JSONBody[EndpointIn]
    ) -> EndpointOut:
        if data.name != name:
            raise InvalidInputError("an endpoint's name cannot change", field="name")
        service = _endpoints(registry)
        record = await anyio.to_thread.run_sync(service.update, name, data.value(name))
        return EndpointOut.of(record)

    @delete("/{name:str}", summary="Remove a registry endpoint", status_code=204)
    async def delete_endpoint(
        self, registry: NamedDependency[Registry], name: FromPath[str]
    ) -> None:
        cache = _proxy(registry)
        await cache.bindings.reload()
        users = cache.bindings.projects_of(name)
        if users:
            raise ConflictError(f"registry endpoint {name!r} is used by proxy projects {users}")
        replicating = await anyio.to_thread.run_sync(_replicating, registry, name)
        if replicating:
            raise ConflictError(
                f"registry endpoint {name!r} is used by replication policies {replicating}"
            )
        await anyio.to_thread.run_sync(_endpoints(registry).delete, name)

    @post(
        "/{name:str}/health",
        summary="Check an endpoint (GET /v2/ with the token flow)",
        status_code=200,
    )
    async def check_endpoint(
        self, registry: NamedDependency[Registry], name: FromPath[str]
    ) -> Response[HealthOut]:
        record = await anyio.to_thread.run_sync(_endpoints(registry).get, name)
        upstreams = registry.extras.get("upstreams")
        if upstreams is None:
            raise RuntimeError("the registry was built without upstream clients")
        factory: UpstreamFactory = upstreams
        try:
            status = await factory.client(record).ping()
        except UpstreamError as exc:
            return Response(HealthOut(healthy=False, status=None, reason=str(exc)))
        reason = None if status == _OK else f"GET /v2/ answered {status}"
        return Response(HealthOut(healthy=status == _OK, status=status, reason=reason))


def _replicating(registry: Registry, name: str) -> list[str]:
    """Names of the replication policies that use endpoint ``name``."""
    service = registry.extras.get("replication")
    if not isinstance(service, ReplicationService):
        return []
    return [p.name for p in service.policies() if p.endpoint == name]


def _name(record: EndpointRecord) -> str:
    return record.name


class ProjectProxyController(Controller):
    path = "/api/v1/projects/{project:str}/proxy"
    tags = ["registries"]  # noqa: RUF012
    guards = [system_admin]  # noqa: RUF012

    @get("/", summary="A project's proxy binding")
    async def read_binding(
        self, registry: NamedDependency[Registry], project: FromPath[str]
    ) -> ProxyOut:
        body = await anyio.to_thread.run_sync(PolicyService(registry.metadata).get, project, PROXY)
        binding = ProxyBinding.load(body)
        return ProxyOut(
            endpoint=binding.endpoint,
            freshness_seconds=binding.freshness_seconds,
            serve_stale=binding.serve_stale,
        )

    @put("/", summary="Make a project a proxy cache of a registry endpoint")
    async def write_binding(
        self, registry: NamedDependency[Registry], project: FromPath[str], data: JSONBody[ProxyIn]
    ) -> ProxyOut:
        if await anyio.to_thread.run_sync(_endpoints(registry).find, data.endpoint) is None:
            raise InvalidInputError(f"no registry endpoint {data.endpoint!r}", field="endpoint")
        binding = ProxyBinding(data.endpoint, data.freshness_seconds, data.serve_stale)
        await self._store(registry, project, binding)
        return ProxyOut(**data.model_dump())

    @delete("/", summary="Stop proxying: the project keeps its cached content", status_code=204)
    async def delete_binding(
        self, registry: NamedDependency[Registry], project: FromPath[str]
    ) -> None:
        await self._store(registry, project, ProxyBinding(None))

    @staticmethod
    async def _store(registry: Registry, project: str, binding: ProxyBinding) -> None:
        service = PolicyService(registry.metadata)
        await anyio.to_thread.run_sync(service.put, project, PROXY, binding.dump())
        _proxy(registry).bindings.put(project, binding)
