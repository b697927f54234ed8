"""Management API: robot accounts, per project and system-wide.

``POST`` answers the secret once; ``PATCH`` disables/enables, changes the expiry or,
with ``{"rotate_secret": true}``, answers a new secret once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import anyio.to_thread
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from pydantic import BaseModel, ConfigDict, Field

from api.guards import project_permission, signed_in, system_admin
from api.pagination import IDS, Page, PageParams
from core.access import Identity
from core.identity_records import RepositoryPermission, RobotRecord
from core.services.identity_services import IdentityServices
from core.services.robots import NewRobot, RobotService


class PermissionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    repository: str = Field(min_length=1, max_length=255)
    actions: list[str] = Field(min_length=1, max_length=4)


class RobotIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=128)
    permissions: list[PermissionIn] = Field(min_length=1, max_length=100)
    expires_at: datetime | None = None

    def parsed(self) -> list[RepositoryPermission]:
        return [RepositoryPermission(p.repository, frozenset(p.actions)) for p in self.permissions]


class RobotPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    disabled: bool | None = None
    expires_at: datetime | None = None
    rotate_secret: bool = False


class RobotOut(BaseModel):
    id: int
    name: str
    permissions: list[dict[str, object]]
    expires_at: str | None
    disabled: bool
    creator: str
    secret: str | None = None

    @classmethod
    def of(cls, robot: RobotRecord, secret: str | None = None) -> RobotOut:
        return cls(
            id=robot.id,
            name=robot.name,
            permissions=[p.as_dict() for p in robot.permissions],
            expires_at=robot.expires_at.isoformat() if robot.expires_at else None,
            disabled=robot.disabled,
            creator=robot.creator,
            secret=secret,
        )


class RobotPage(Page[RobotOut]):
    """Robots, by id."""


async def _create(
    caller: Identity, robots: RobotService, project: str | None, data: RobotIn
) -> Response[RobotOut]:
    def run() -> NewRobot:
        if project is None:
            return robots.create_system(caller, data.name, data.parsed(), data.expires_at)
        return robots.create_in_project(caller, project, data.name, data.parsed(), data.expires_at)

    created = await anyio.to_thread.run_sync(run)
    return Response(content=RobotOut.of(created.robot, created.secret), status_code=201)


async def _list(
    request: Request[Any, Any, Any],
    caller: Identity,
    robots: RobotService,
    project: str | None,
    page: PageParams,
) -> Response[RobotPage]:
    window = await page.fetch(
        lambda after, count: robots.list(caller, project, after, count), key=_id, cursor=IDS
    )
    return window.respond(request, RobotPage, [RobotOut.of(r) for r in window.items])


async def _update(
    caller: Identity, robots: RobotService, project: str | None, robot_id: int, data: RobotPatch
) -> RobotOut:
    def run() -> tuple[RobotRecord, str | None]:
        return robots.update(
            caller,
            project,
            robot_id,
            disabled=data.disabled,
            expires_at=data.expires_at,
            rotate=data.rotate_secret,
        )

    robot, secret = await anyio.to_thread.run_sync(run)
    return RobotOut.of(robot, secret)


def _id(robot: RobotRecord) -> int:
    return robot.id


class ProjectRobotController(Controller):
    path = "/api/v1/projects/{project:str}/robots"
    tags = ["robots"]  # noqa: RUF012
    guards = [signed_in]  # noqa: RUF012

    @post(
        "/",
        summary="Create a project robot (the secret is shown once)",
        guards=[project_permission("robot", "create")],
    )
    async def create(
        self,
        caller: NamedDependency[Identity],
        identity_services: NamedDependency[IdentityServices],
        project: FromPath[str],
        data: JSONBody[RobotIn],
    ) -> Response[RobotOut]:
        return await _create(caller, identity_services.robots, project, data)

    @get("/", summary="List the project's robots", guards=[project_permission("robot", "list")])
    async def list_robots(
        self,
        request: Request[Any, Any, Any],
        caller: NamedDependency[Identity],
        identity_services: NamedDependency[IdentityServices],
        project: FromPath[str],
        page: NamedDependency[PageParams],
    ) -> Response[RobotPage]:
        return await _list(request, caller, identity_services.robots, project, page)

    @get(
        "/{robot_id:int}",
        summary="Read a project robot",
        guards=[project_permission("robot", "read")],
    )
    async def read(
        self,
        caller: NamedDependency[Identity],
        identity_services: NamedDependency[IdentityServices],
        project: FromPath[str],
        robot_id: FromPath[int],
    ) -> RobotOut:
        read = identity_services.robots.get
        return RobotOut.of(await anyio.to_thread.run_sync(read, caller, project, robot_id, "read"))

    @patch(
        "/{robot_id:int}",
        summary="Disable, re-date or rotate a project robot",
        guards=[project_permission("robot", "update")],
    )
    async def update(
        self,
        caller: NamedDependency[Identity],
        identity_services: NamedDependency[IdentityServices],
        project: FromPath[str],
        robot_id: FromPath[int],
        data: JSONBody[RobotPatch],
    ) -> RobotOut:
        return await _update(caller, identity_services.robots, project, robot_id, data)

    @delete(
        "/{robot_id:int}",
        summary="Delete a project robot",
        status_code=204,
        guards=[project_permission("robot", "delete")],
    )
    async def remove(
        self,
        caller: NamedDependency[Identity],
        identity_services: NamedDependency[IdentityServices],
        project: FromPath[str],
        robot_id: FromPath[int],
    ) -> None:
        remove = identity_services.robots.delete
        await anyio.to_thread.run_sync(remove, caller, project, robot_id)


class SystemRobotController(Controller):
    path = "/api/v1/robots"
    tags = ["robots"]  # noqa: RUF012
    guards = [system_admin]  # noqa: RUF012

    @post("/", summary="Create a system robot (administrators; the secret is shown once)")
    async def create(
        self,
        caller: NamedDependency[Identity],
        identity_services: NamedDependency[IdentityServices],
        data: JSONBody[RobotIn],
    ) -> Response[RobotOut]:
        return await _create(caller, identity_services.robots, None, data)

    @get("/", summary="List system robots")
    async def list_robots(
        self,
        request: Request[Any, Any, Any],
        caller: NamedDependency[Identity],
        identity_services: NamedDependency[IdentityServices],
        page: NamedDependency[PageParams],
    ) -> Response[RobotPage]:
        return await _list(request, caller, identity_services.robots, None, page)

    @get("/{robot_id:int}", summary="Read a system robot")
    async def read(
        self,
        caller: NamedDependency[Identity],
        identity_services: NamedDependency[IdentityServices],
        robot_id: FromPath[int],
    ) -> RobotOut:
        read = identity_services.robots.get
        return RobotOut.of(await anyio.to_thread.run_sync(read, caller, None, robot_id, "read"))

    @patch("/{robot_id:int}", summary="Disable, re-date or rotate a system robot")
    async def update(
        self,
        caller: NamedDependency[Identity],
        identity_services: NamedDependency[IdentityServices],
        robot_id: FromPath[int],
        data: JSONBody[RobotPatch],
    ) -> RobotOut:
        return await _update(caller, identity_services.robots, None, robot_id, data)

    @delete("/{robot_id:int}", summary="Delete a system robot", status_code=204)
    async def remove(
        self,
        caller: NamedDependency[Identity],
        identity_services: NamedDependency[IdentityServices],
        robot_id: FromPath[int],
    ) -> None:
        remove = identity_services.robots.delete
        await anyio.to_thread.run_sync(remove, caller, None, robot_id)
