"""Management API: projects (``/api/v1/projects``)."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody
from pydantic import BaseModel, ConfigDict, Field

from api.context import identity_of, registry_of
from api.principal import api_caller, require_caller
from core.records import ProjectRecord


class ProjectIn(BaseModel):
    name: str = Field(min_length=1, max_length=63)
    public: bool = False


class ProjectPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    public: bool | None = None


class ProjectOut(BaseModel):
    name: str
    public: bool
    created_at: str

    @classmethod
    def of(cls, project: ProjectRecord) -> ProjectOut:
        return cls(
            name=project.name, public=project.public, created_at=project.created_at.isoformat()
        )


class ProjectPage(BaseModel):
    items: list[ProjectOut]
    next: str | None = None


class ProjectController(Controller):
    path = "/api/v1/projects"
    tags = ["projects"]  # noqa: RUF012

    @post("/", summary="Create a project")
    async def create(
        self, request: Request[Any, Any, Any], data: JSONBody[ProjectIn]
    ) -> Response[Any]:
        registry = registry_of(request)
        caller = await require_caller(request, registry)
        create = identity_of(registry).projects.create
        project = await anyio.to_thread.run_sync(create, caller, data.name, data.public)
        return Response(content=ProjectOut.of(project), status_code=201)

    @get("/", summary="List projects")
    async def list_projects(
        self,
        request: Request[Any, Any, Any],
        limit: FromQuery[int] = 100,
        last: FromQuery[str | None] = None,
    ) -> ProjectPage:
        registry = registry_of(request)
        caller = await api_caller(request, registry)
        limit = max(1, min(limit, 100))
        visible = identity_of(registry).projects.list
        projects = await anyio.to_thread.run_sync(visible, caller, last, limit + 1)
        more, projects = len(projects) > limit, projects[:limit]
        return ProjectPage(
            items=[ProjectOut.of(p) for p in projects],
            next=projects[-1].name if more and projects else None,
        )

    @get("/{project:str}", summary="Read a project")
    async def read(self, request: Request[Any, Any, Any], project: FromPath[str]) -> ProjectOut:
        registry = registry_of(request)
        caller = await api_caller(request, registry)
        found = await anyio.to_thread.run_sync(identity_of(registry).projects.read, caller, project)
        return ProjectOut.of(found)

    @patch("/{project:str}", summary="Update a project (public flag)")
    async def update(
        self, request: Request[Any, Any, Any], project: FromPath[str], data: JSONBody[ProjectPatch]
    ) -> ProjectOut:
        registry = registry_of(request)
        caller = await require_caller(request, registry)
        update = identity_of(registry).projects.update
        found = await anyio.to_thread.run_sync(update, caller, project, data.public)
        return ProjectOut.of(found)

    @delete("/{project:str}", summary="Delete a project and everything in it", status_code=204)
    async def remove(self, request: Request[Any, Any, Any], project: FromPath[str]) -> None:
        registry = registry_of(request)
        caller = await require_caller(request, registry)
        await anyio.to_thread.run_sync(identity_of(registry).projects.delete, caller, project)
