"""Management API: projects (``/api/v1/projects``)."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from pydantic import BaseModel, ConfigDict, Field

from api.guards import project_permission, signed_in
from api.pagination import NAMES, Page, PageParams
from core.access import Identity
from core.records import ProjectRecord
from core.services.identity_services import IdentityServices


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


class ProjectPage(Page[ProjectOut]):
    """Projects the caller may read, by name."""


class ProjectController(Controller):
    path = "/api/v1/projects"
    tags = ["projects"]  # noqa: RUF012

    @post("/", summary="Create a project", guards=[signed_in])
    async def create(
        self,
        caller: NamedDependency[Identity],
        identity_services: NamedDependency[IdentityServices],
        data: JSONBody[ProjectIn],
    ) -> Response[ProjectOut]:
        create = identity_services.projects.create
        project = await anyio.to_thread.run_sync(create, caller, data.name, data.public)
        return Response(content=ProjectOut.of(project), status_code=201)

    @get("/", summary="List projects")
    async def list_projects(
        self,
        request: Request[Any, Any, Any],
        caller: NamedDependency[Identity],
        identity_services: NamedDependency[IdentityServices],
        page: NamedDependency[PageParams],
    ) -> Response[ProjectPage]:
        visible = identity_services.projects.list
        window = await page.fetch(
            lambda after, count: visible(caller, after, count), key=_name, cursor=NAMES
        )
        return window.respond(request, ProjectPage, [ProjectOut.of(p) for p in window.items])

    @get("/{project:str}", summary="Read a project", guards=[project_permission("project", "read")])
    async def read(
        self,
        caller: NamedDependency[Identity],
        identity_services: NamedDependency[IdentityServices],
        project: FromPath[str],
    ) -> ProjectOut:
        found = await anyio.to_thread.run_sync(identity_services.projects.read, caller, project)
        return ProjectOut.of(found)

    @patch(
        "/{project:str}",
        summary="Update a project (public flag)",
        guards=[signed_in, project_permission("project", "update")],
    )
    async def update(
        self,
        caller: NamedDependency[Identity],
        identity_services: NamedDependency[IdentityServices],
        project: FromPath[str],
        data: JSONBody[ProjectPatch],
    ) -> ProjectOut:
        update = identity_services.projects.update
        found = await anyio.to_thread.run_sync(update, caller, project, data.public)
        return ProjectOut.of(found)

    @delete(
        "/{project:str}",
        summary="Delete a project and everything in it",
        status_code=204,
        guards=[signed_in, project_permission("project", "delete")],
    )
    async def remove(
        self,
        caller: NamedDependency[Identity],
        identity_services: NamedDependency[IdentityServices],
        project: FromPath[str],
    ) -> None:
        await anyio.to_thread.run_sync(identity_services.projects.delete, caller, project)


def _name(project: ProjectRecord) -> str:
    return project.name
